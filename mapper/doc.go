// Package mapper turns tagged Go structs into table metadata and reads and
// writes their fields for the session.
//
// A model is a plain struct:
//
//	type Account struct {
//		ID      int64    `db:"id,pk,auto"`
//		Owner   string   `db:"owner,unique"`
//		Version int64    `db:"version,version"`
//		Entries []*Entry `rel:"account_id"`
//	}
//
// The `db` tag is sqlx's, so models scan with sqlx too: a column name, then
// options pk, auto, version, unique, index, readonly, size=N, type=SQLTYPE
// (a comma inside parentheses belongs to it: type=DECIMAL(20,4)),
// type.mysql=, type.postgres=, type.sqlite= (that database's type),
// precision=P,scale=S (an exact decimal), json (encoding/json text),
// and created, updated, softdelete (time columns the orm sets itself);
// db:"-" skips a field, and a field without a tag maps to its name in
// snake_case. Embedded structs are flattened. A `rel` tag marks a relation,
// never a column (see [RelTag]): `rel:"column[,cascade]"` is belongs-to on a
// *Parent field and has-many on a []*Child field, `rel:"column,hasone"` is
// has-one on a *Child field, and `rel:"m2m=join(this_col,other_col)"` is
// many-to-many through a join table on a []*Other field.
//
// [Registry.Table] builds a [Table] once per type and caches it; a model that
// cannot be mapped yields a [*DefinitionError] naming the type, field and
// reason. Each Table carries an [Accessor]: the reflective one, or one that
// generated code installed with [RegisterGenerated]. The package knows
// nothing of sessions or SQL.
//
// Generated accessors come from cmd/tallygen: its tally_gen.go registers
// them at init, and a [Registry] uses them unless made with [Reflective].
// A generated accessor first calls [CheckGenerated], so a struct changed
// since generation is refused with a [*StaleError] ("run go generate")
// inside the [*DefinitionError], never mapped wrongly. The small helpers
// that generated code calls ([Assign], [PtrScan], [Key], [BatchSnapshotter],
// the AppendKey functions, ...) are public only for it.
package mapper
