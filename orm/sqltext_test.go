package orm

import (
	"strings"
	"testing"

	"github.com/tallyorm/tally/dialect"
	"github.com/tallyorm/tally/internal/testmodels"
	"github.com/tallyorm/tally/mapper"
)

// sqlPost and sqlLabel are a many-to-many pair, for the join-table SQL.
type sqlPost struct {
	ID     int64       `db:"id,pk,auto"`
	Labels []*sqlLabel `rel:"m2m=post_labels(post_id,label_id)"`
}

type sqlLabel struct {
	ID   int64  `db:"id,pk,auto"`
	Name string `db:"name"`
}

// sqlOnlyKey has nothing to insert but its generated key.
type sqlOnlyKey struct {
	ID int64 `db:"id,pk,auto"`
}

// TestSQLText checks the text of every statement sqltext.go builds, on
// each dialect: quoting, placeholder numbering (the order the callers bind
// their arguments in), composite keys as row values, version checks, row
// locks, and the DDL. Q's statements keep "?" for dialect.Expand; their
// rows show the text after the dialect's Rebind, as it is sent.
func TestSQLText(t *testing.T) {
	reg := mapper.NewRegistry()
	table := func(m any) *mapper.Table {
		t.Helper()
		tab, err := reg.TableOf(m)
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	acc, ent, tag := table(testmodels.Account{}), table(testmodels.Entry{}), table(testmodels.Tag{})
	post, label, only := table(sqlPost{}), table(sqlLabel{}), table(sqlOnlyKey{})
	col := func(tab *mapper.Table, names ...string) []*mapper.Column {
		var cols []*mapper.Column
		for _, n := range names {
			c := tab.Column(n)
			if c == nil {
				t.Fatalf("%s has no column %s", tab.Name, n)
			}
			cols = append(cols, c)
		}
		return cols
	}
	rel := func(tab *mapper.Table, field string) *mapper.Relation {
		for _, r := range tab.Relations {
			if r.Field == field {
				return r
			}
		}
		t.Fatalf("%s has no relation %s", tab.Name, field)
		return nil
	}
	// ddl joins a CREATE TABLE and its CREATE INDEX statements.
	ddl := func(stmts []string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(stmts, ";\n")
	}
	join := func(left, right *mapper.Table) mapper.Join {
		for _, j := range reg.JoinTables([]*mapper.Table{left, right}) {
			return j
		}
		t.Fatalf("no join table between %s and %s", left.Name, right.Name)
		return mapper.Join{}
	}
	entFK := mapper.ForeignKey{Child: ent, Column: ent.Column("account_id"), Parent: acc}
	where := []string{"balance > ?", "owner = ? OR note IS NULL"}
	tests := []struct {
		name string
		sql  func(d dialect.Dialect) string
		want map[string]string // by dialect name
	}{
		{"select by int key", func(d dialect.Dialect) string { return selectByKeySQL(d, acc, acc.Columns) }, map[string]string{
			"postgres": `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "id" = $1`,
			"mysql":    "SELECT `id`, `owner`, `balance`, `version`, `note`, `created_at` FROM `accounts` WHERE `id` = ?",
			"sqlite":   `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "id" = ?`,
		}},
		{"select by composite key", func(d dialect.Dialect) string { return selectByKeySQL(d, tag, col(tag, "uses")) }, map[string]string{
			"postgres": `SELECT "uses" FROM "tags" WHERE "kind" = $1 AND "name" = $2`,
			"mysql":    "SELECT `uses` FROM `tags` WHERE `kind` = ? AND `name` = ?",
			"sqlite":   `SELECT "uses" FROM "tags" WHERE "kind" = ? AND "name" = ?`,
		}},
		{"insert two rows", func(d dialect.Dialect) string {
			return insertSQL(d, acc, col(acc, "owner", "balance"), col(acc, "id"), 2, d.Returning())
		}, map[string]string{
			"postgres": `INSERT INTO "accounts" ("owner", "balance") VALUES ($1, $2), ($3, $4) RETURNING "id"`,
			"mysql":    "INSERT INTO `accounts` (`owner`, `balance`) VALUES (?, ?), (?, ?)",
			"sqlite":   `INSERT INTO "accounts" ("owner", "balance") VALUES (?, ?), (?, ?) RETURNING "id"`,
		}},
		{"insert returning off", func(d dialect.Dialect) string { return insertSQL(d, ent, col(ent, "amount"), col(ent, "id"), 1, false) }, map[string]string{
			"postgres": `INSERT INTO "entries" ("amount") VALUES ($1)`,
			"mysql":    "INSERT INTO `entries` (`amount`) VALUES (?)",
			"sqlite":   `INSERT INTO "entries" ("amount") VALUES (?)`,
		}},
		{"insert no columns", func(d dialect.Dialect) string { return insertSQL(d, only, nil, col(only, "id"), 1, d.Returning()) }, map[string]string{
			"postgres": `INSERT INTO "sql_only_keys" DEFAULT VALUES RETURNING "id"`,
			"mysql":    "INSERT INTO `sql_only_keys` () VALUES ()",
			"sqlite":   `INSERT INTO "sql_only_keys" DEFAULT VALUES RETURNING "id"`,
		}},
		{"upsert do update with version", func(d dialect.Dialect) string {
			var ret []*mapper.Column
			if d.Returning() {
				ret = col(acc, "id")
			}
			return upsertSQL(d, acc, col(acc, "owner", "balance"), 1, col(acc, "owner"), col(acc, "balance"), ret)
		}, map[string]string{
			"postgres": `INSERT INTO "accounts" ("owner", "balance") VALUES ($1, $2) ON CONFLICT ("owner") DO UPDATE SET "balance" = EXCLUDED."balance", "version" = "accounts"."version" + 1 RETURNING "id"`,
			"mysql":    "INSERT INTO `accounts` (`owner`, `balance`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `balance` = VALUES(`balance`), `version` = `version` + 1",
			"sqlite":   `INSERT INTO "accounts" ("owner", "balance") VALUES (?, ?) ON CONFLICT ("owner") DO UPDATE SET "balance" = EXCLUDED."balance", "version" = "accounts"."version" + 1 RETURNING "id"`,
		}},
		{"upsert do nothing, composite key", func(d dialect.Dialect) string {
			return upsertSQL(d, tag, col(tag, "kind", "name", "uses"), 2, tag.PK, nil, nil)
		}, map[string]string{
			"postgres": `INSERT INTO "tags" ("kind", "name", "uses") VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT ("kind", "name") DO NOTHING`,
			"mysql":    "INSERT INTO `tags` (`kind`, `name`, `uses`) VALUES (?, ?, ?), (?, ?, ?) ON DUPLICATE KEY UPDATE `kind` = `kind`",
			"sqlite":   `INSERT INTO "tags" ("kind", "name", "uses") VALUES (?, ?, ?), (?, ?, ?) ON CONFLICT ("kind", "name") DO NOTHING`,
		}},
		{"upsert read-back, composite key", func(d dialect.Dialect) string { return upsertReselectSQL(d, tag, tag.PK, 2) }, map[string]string{
			"postgres": `SELECT "kind", "name", "uses" FROM "tags" WHERE ("kind" = $1 AND "name" = $2) OR ("kind" = $3 AND "name" = $4) FOR UPDATE`,
			"mysql":    "SELECT `kind`, `name`, `uses` FROM `tags` WHERE (`kind` = ? AND `name` = ?) OR (`kind` = ? AND `name` = ?) FOR UPDATE",
			"sqlite":   `SELECT "kind", "name", "uses" FROM "tags" WHERE ("kind" = ? AND "name" = ?) OR ("kind" = ? AND "name" = ?)`,
		}},
		{"upsert read-back, one column", func(d dialect.Dialect) string { return upsertReselectSQL(d, acc, col(acc, "owner"), 2) }, map[string]string{
			"postgres": `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "owner" IN ($1, $2) FOR UPDATE`,
			"mysql":    "SELECT `id`, `owner`, `balance`, `version`, `note`, `created_at` FROM `accounts` WHERE `owner` IN (?, ?) FOR UPDATE",
			"sqlite":   `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "owner" IN (?, ?)`,
		}},
		{"projection with a join", func(d dialect.Dialect) string {
			return d.Rebind(projectSQL(d, "accounts", []string{"JOIN entries e ON e.account_id = accounts.id"},
				selectText{what: "e.amount AS a", where: where[:1], order: []string{"a DESC"}, limit: true, offset: true}))
		}, map[string]string{
			"postgres": `SELECT e.amount AS a FROM "accounts" JOIN entries e ON e.account_id = accounts.id WHERE (balance > $1) ORDER BY a DESC LIMIT $2 OFFSET $3`,
			"mysql":    "SELECT e.amount AS a FROM `accounts` JOIN entries e ON e.account_id = accounts.id WHERE (balance > ?) ORDER BY a DESC LIMIT ? OFFSET ?",
			"sqlite":   `SELECT e.amount AS a FROM "accounts" JOIN entries e ON e.account_id = accounts.id WHERE (balance > ?) ORDER BY a DESC LIMIT ? OFFSET ?`,
		}},
		{"update with version", func(d dialect.Dialect) string { return updateSQL(d, acc, col(acc, "balance", "version", "note")) }, map[string]string{
			"postgres": `UPDATE "accounts" SET "balance" = $1, "note" = $2, "version" = $3 WHERE "id" = $4 AND "version" = $5`,
			"mysql":    "UPDATE `accounts` SET `balance` = ?, `note` = ?, `version` = ? WHERE `id` = ? AND `version` = ?",
			"sqlite":   `UPDATE "accounts" SET "balance" = ?, "note" = ?, "version" = ? WHERE "id" = ? AND "version" = ?`,
		}},
		{"update composite key", func(d dialect.Dialect) string { return updateSQL(d, tag, col(tag, "uses")) }, map[string]string{
			"postgres": `UPDATE "tags" SET "uses" = $1 WHERE "kind" = $2 AND "name" = $3`,
			"mysql":    "UPDATE `tags` SET `uses` = ? WHERE `kind` = ? AND `name` = ?",
			"sqlite":   `UPDATE "tags" SET "uses" = ? WHERE "kind" = ? AND "name" = ?`,
		}},
		{"delete with version", func(d dialect.Dialect) string { return deleteVersionSQL(d, acc) }, map[string]string{
			"postgres": `DELETE FROM "accounts" WHERE "id" = $1 AND "version" = $2`,
			"mysql":    "DELETE FROM `accounts` WHERE `id` = ? AND `version` = ?",
			"sqlite":   `DELETE FROM "accounts" WHERE "id" = ? AND "version" = ?`,
		}},
		{"delete in", func(d dialect.Dialect) string { return deleteInSQL(d, ent, 3) }, map[string]string{
			"postgres": `DELETE FROM "entries" WHERE "id" IN ($1, $2, $3)`,
			"mysql":    "DELETE FROM `entries` WHERE `id` IN (?, ?, ?)",
			"sqlite":   `DELETE FROM "entries" WHERE "id" IN (?, ?, ?)`,
		}},
		{"delete in composite", func(d dialect.Dialect) string { return deleteInSQL(d, tag, 2) }, map[string]string{
			"postgres": `DELETE FROM "tags" WHERE ("kind", "name") IN (($1, $2), ($3, $4))`,
			"mysql":    "DELETE FROM `tags` WHERE (`kind`, `name`) IN ((?, ?), (?, ?))",
			"sqlite":   `DELETE FROM "tags" WHERE ("kind", "name") IN ((?, ?), (?, ?))`,
		}},
		{"null column in", func(d dialect.Dialect) string { return nullColumnSQL(d, ent, ent.Column("account_id"), 2) }, map[string]string{
			"postgres": `UPDATE "entries" SET "account_id" = NULL WHERE "id" IN ($1, $2)`,
			"mysql":    "UPDATE `entries` SET `account_id` = NULL WHERE `id` IN (?, ?)",
			"sqlite":   `UPDATE "entries" SET "account_id" = NULL WHERE "id" IN (?, ?)`,
		}},
		{"null column composite", func(d dialect.Dialect) string { return nullColumnSQL(d, tag, tag.Column("uses"), 1) }, map[string]string{
			"postgres": `UPDATE "tags" SET "uses" = NULL WHERE "kind" = $1 AND "name" = $2`,
			"mysql":    "UPDATE `tags` SET `uses` = NULL WHERE `kind` = ? AND `name` = ?",
			"sqlite":   `UPDATE "tags" SET "uses" = NULL WHERE "kind" = ? AND "name" = ?`,
		}},
		{"join delete", func(d dialect.Dialect) string { return joinDeleteSQL(d, "post_labels", "post_id", 2) }, map[string]string{
			"postgres": `DELETE FROM "post_labels" WHERE "post_id" IN ($1, $2)`,
			"mysql":    "DELETE FROM `post_labels` WHERE `post_id` IN (?, ?)",
			"sqlite":   `DELETE FROM "post_labels" WHERE "post_id" IN (?, ?)`,
		}},
		{"join delete pairs", func(d dialect.Dialect) string { return joinPairsDeleteSQL(d, "post_labels", "post_id", "label_id", 2) }, map[string]string{
			"postgres": `DELETE FROM "post_labels" WHERE ("post_id", "label_id") IN (($1, $2), ($3, $4))`,
			"mysql":    "DELETE FROM `post_labels` WHERE (`post_id`, `label_id`) IN ((?, ?), (?, ?))",
			"sqlite":   `DELETE FROM "post_labels" WHERE ("post_id", "label_id") IN ((?, ?), (?, ?))`,
		}},
		{"join insert", func(d dialect.Dialect) string { return joinInsertSQL(d, "post_labels", "post_id", "label_id", 2) }, map[string]string{
			"postgres": `INSERT INTO "post_labels" ("post_id", "label_id") VALUES ($1, $2), ($3, $4)`,
			"mysql":    "INSERT INTO `post_labels` (`post_id`, `label_id`) VALUES (?, ?), (?, ?)",
			"sqlite":   `INSERT INTO "post_labels" ("post_id", "label_id") VALUES (?, ?), (?, ?)`,
		}},
		{"load has-many", func(d dialect.Dialect) string { return loadSQL(d, rel(acc, "Entries"), ent, 2) }, map[string]string{
			"postgres": `SELECT "id", "account_id", "amount" FROM "entries" WHERE "account_id" IN ($1, $2) ORDER BY "entries"."id"`,
			"mysql":    "SELECT `id`, `account_id`, `amount` FROM `entries` WHERE `account_id` IN (?, ?) ORDER BY `entries`.`id`",
			"sqlite":   `SELECT "id", "account_id", "amount" FROM "entries" WHERE "account_id" IN (?, ?) ORDER BY "entries"."id"`,
		}},
		{"load belongs-to", func(d dialect.Dialect) string { return loadSQL(d, rel(ent, "Account"), acc, 1) }, map[string]string{
			"postgres": `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "id" IN ($1) ORDER BY "accounts"."id"`,
			"mysql":    "SELECT `id`, `owner`, `balance`, `version`, `note`, `created_at` FROM `accounts` WHERE `id` IN (?) ORDER BY `accounts`.`id`",
			"sqlite":   `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "id" IN (?) ORDER BY "accounts"."id"`,
		}},
		{"load m2m", func(d dialect.Dialect) string { return loadSQL(d, rel(post, "Labels"), label, 2) }, map[string]string{
			"postgres": `SELECT "post_labels"."post_id", "sql_labels"."id", "sql_labels"."name" FROM "sql_labels" JOIN "post_labels" ON "post_labels"."label_id" = "sql_labels"."id" WHERE "post_labels"."post_id" IN ($1, $2) ORDER BY "post_labels"."post_id", "sql_labels"."id"`,
			"mysql":    "SELECT `post_labels`.`post_id`, `sql_labels`.`id`, `sql_labels`.`name` FROM `sql_labels` JOIN `post_labels` ON `post_labels`.`label_id` = `sql_labels`.`id` WHERE `post_labels`.`post_id` IN (?, ?) ORDER BY `post_labels`.`post_id`, `sql_labels`.`id`",
			"sqlite":   `SELECT "post_labels"."post_id", "sql_labels"."id", "sql_labels"."name" FROM "sql_labels" JOIN "post_labels" ON "post_labels"."label_id" = "sql_labels"."id" WHERE "post_labels"."post_id" IN (?, ?) ORDER BY "post_labels"."post_id", "sql_labels"."id"`,
		}},
		{"probe", func(d dialect.Dialect) string { return probeSQL(d, "accounts") }, map[string]string{
			"postgres": `SELECT 1 FROM "accounts" WHERE 1 = 0`,
			"mysql":    "SELECT 1 FROM `accounts` WHERE 1 = 0",
			"sqlite":   `SELECT 1 FROM "accounts" WHERE 1 = 0`,
		}},
		{"no-op write", func(d dialect.Dialect) string { return noopWriteSQL(d, "accounts") }, map[string]string{
			"postgres": `DELETE FROM "accounts" WHERE 0 = 1`,
			"mysql":    "DELETE FROM `accounts` WHERE 0 = 1",
			"sqlite":   `DELETE FROM "accounts" WHERE 0 = 1`,
		}},
		{"locked get", func(d dialect.Dialect) string { return selectForUpdateSQL(d, acc) }, map[string]string{
			"postgres": `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "id" = $1 FOR UPDATE`,
			"mysql":    "SELECT `id`, `owner`, `balance`, `version`, `note`, `created_at` FROM `accounts` WHERE `id` = ? FOR UPDATE",
			"sqlite":   `SELECT "id", "owner", "balance", "version", "note", "created_at" FROM "accounts" WHERE "id" = ?`,
		}},
		{"query all clauses", func(d dialect.Dialect) string {
			return d.Rebind(querySQL(d, acc.Name, selectText{what: quoteList(d, col(acc, "id", "owner")), where: where,
				order: []string{d.Quote("owner") + " DESC", d.Quote("id")}, limit: true, offset: true, forUpdate: true}))
		}, map[string]string{
			"postgres": `SELECT "id", "owner" FROM "accounts" WHERE (balance > $1) AND (owner = $2 OR note IS NULL) ORDER BY "owner" DESC, "id" LIMIT $3 OFFSET $4 FOR UPDATE`,
			"mysql":    "SELECT `id`, `owner` FROM `accounts` WHERE (balance > ?) AND (owner = ? OR note IS NULL) ORDER BY `owner` DESC, `id` LIMIT ? OFFSET ? FOR UPDATE",
			"sqlite":   `SELECT "id", "owner" FROM "accounts" WHERE (balance > ?) AND (owner = ? OR note IS NULL) ORDER BY "owner" DESC, "id" LIMIT ? OFFSET ?`,
		}},
		{"query limit only", func(d dialect.Dialect) string {
			return d.Rebind(querySQL(d, ent.Name, selectText{what: "1", where: []string{"amount > ?"}, limit: true}))
		}, map[string]string{
			"postgres": `SELECT 1 FROM "entries" WHERE (amount > $1) LIMIT $2`,
			"mysql":    "SELECT 1 FROM `entries` WHERE (amount > ?) LIMIT ?",
			"sqlite":   `SELECT 1 FROM "entries" WHERE (amount > ?) LIMIT ?`,
		}},
		{"count", func(d dialect.Dialect) string {
			return d.Rebind(querySQL(d, acc.Name, selectText{what: "COUNT(*)", where: where}))
		}, map[string]string{
			"postgres": `SELECT COUNT(*) FROM "accounts" WHERE (balance > $1) AND (owner = $2 OR note IS NULL)`,
			"mysql":    "SELECT COUNT(*) FROM `accounts` WHERE (balance > ?) AND (owner = ? OR note IS NULL)",
			"sqlite":   `SELECT COUNT(*) FROM "accounts" WHERE (balance > ?) AND (owner = ? OR note IS NULL)`,
		}},
		{"select without where", func(d dialect.Dialect) string {
			return d.Rebind(querySQL(d, tag.Name, selectText{what: quoteList(d, tag.Columns)}))
		}, map[string]string{
			"postgres": `SELECT "kind", "name", "uses" FROM "tags"`,
			"mysql":    "SELECT `kind`, `name`, `uses` FROM `tags`",
			"sqlite":   `SELECT "kind", "name", "uses" FROM "tags"`,
		}},
		{"bulk keys locked", func(d dialect.Dialect) string {
			return d.Rebind(querySQL(d, tag.Name, selectText{what: quoteList(d, tag.PK), where: []string{"uses < ?"}, forUpdate: true}))
		}, map[string]string{
			"postgres": `SELECT "kind", "name" FROM "tags" WHERE (uses < $1) FOR UPDATE`,
			"mysql":    "SELECT `kind`, `name` FROM `tags` WHERE (uses < ?) FOR UPDATE",
			"sqlite":   `SELECT "kind", "name" FROM "tags" WHERE (uses < ?)`,
		}},
		{"update all with version", func(d dialect.Dialect) string {
			return d.Rebind(updateAllSQL(d, acc, []string{"balance", "note"}, where))
		}, map[string]string{
			"postgres": `UPDATE "accounts" SET "balance" = $1, "note" = $2, "version" = "version" + 1 WHERE (balance > $3) AND (owner = $4 OR note IS NULL)`,
			"mysql":    "UPDATE `accounts` SET `balance` = ?, `note` = ?, `version` = `version` + 1 WHERE (balance > ?) AND (owner = ? OR note IS NULL)",
			"sqlite":   `UPDATE "accounts" SET "balance" = ?, "note" = ?, "version" = "version" + 1 WHERE (balance > ?) AND (owner = ? OR note IS NULL)`,
		}},
		{"update all composite key", func(d dialect.Dialect) string {
			return d.Rebind(updateAllSQL(d, tag, []string{"uses"}, []string{"kind = ?"}))
		}, map[string]string{
			"postgres": `UPDATE "tags" SET "uses" = $1 WHERE (kind = $2)`,
			"mysql":    "UPDATE `tags` SET `uses` = ? WHERE (kind = ?)",
			"sqlite":   `UPDATE "tags" SET "uses" = ? WHERE (kind = ?)`,
		}},
		{"delete all", func(d dialect.Dialect) string {
			return d.Rebind(deleteAllSQL(d, ent.Name, []string{"amount = ?", "account_id IN (?, ?)"}))
		}, map[string]string{
			"postgres": `DELETE FROM "entries" WHERE (amount = $1) AND (account_id IN ($2, $3))`,
			"mysql":    "DELETE FROM `entries` WHERE (amount = ?) AND (account_id IN (?, ?))",
			"sqlite":   `DELETE FROM "entries" WHERE (amount = ?) AND (account_id IN (?, ?))`,
		}},
		{"create table with index and foreign key", func(d dialect.Dialect) string { return ddl(createTableSQL(d, ent, []mapper.ForeignKey{entFK})) }, map[string]string{
			"postgres": "CREATE TABLE IF NOT EXISTS \"entries\" (\n  \"id\" BIGINT GENERATED BY DEFAULT AS IDENTITY,\n  \"account_id\" BIGINT NOT NULL,\n  \"amount\" BIGINT NOT NULL,\n  PRIMARY KEY (\"id\"),\n  FOREIGN KEY (\"account_id\") REFERENCES \"accounts\" (\"id\")\n);\nCREATE INDEX IF NOT EXISTS \"ix_entries_account_id_a850da40\" ON \"entries\" (\"account_id\")",
			"mysql":    "CREATE TABLE IF NOT EXISTS `entries` (\n  `id` BIGINT NOT NULL AUTO_INCREMENT,\n  `account_id` BIGINT NOT NULL,\n  `amount` BIGINT NOT NULL,\n  PRIMARY KEY (`id`),\n  INDEX `ix_entries_account_id_a850da40` (`account_id`),\n  FOREIGN KEY (`account_id`) REFERENCES `accounts` (`id`)\n)",
			"sqlite":   "CREATE TABLE IF NOT EXISTS \"entries\" (\n  \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n  \"account_id\" INTEGER NOT NULL,\n  \"amount\" INTEGER NOT NULL,\n  FOREIGN KEY (\"account_id\") REFERENCES \"accounts\" (\"id\")\n);\nCREATE INDEX IF NOT EXISTS \"ix_entries_account_id_a850da40\" ON \"entries\" (\"account_id\")",
		}},
		{"create table composite key", func(d dialect.Dialect) string { return ddl(createTableSQL(d, tag, nil)) }, map[string]string{
			"postgres": "CREATE TABLE IF NOT EXISTS \"tags\" (\n  \"kind\" VARCHAR(32) NOT NULL,\n  \"name\" VARCHAR(64) NOT NULL,\n  \"uses\" BIGINT NOT NULL,\n  PRIMARY KEY (\"kind\", \"name\")\n)",
			"mysql":    "CREATE TABLE IF NOT EXISTS `tags` (\n  `kind` VARCHAR(32) NOT NULL,\n  `name` VARCHAR(64) NOT NULL,\n  `uses` BIGINT NOT NULL,\n  PRIMARY KEY (`kind`, `name`)\n)",
			"sqlite":   "CREATE TABLE IF NOT EXISTS \"tags\" (\n  \"kind\" TEXT NOT NULL,\n  \"name\" TEXT NOT NULL,\n  \"uses\" INTEGER NOT NULL,\n  PRIMARY KEY (\"kind\", \"name\")\n)",
		}},
		{"create join table", func(d dialect.Dialect) string { return ddl(joinTableSQL(d, join(post, label))) }, map[string]string{
			"postgres": "CREATE TABLE IF NOT EXISTS \"post_labels\" (\n  \"post_id\" BIGINT NOT NULL,\n  \"label_id\" BIGINT NOT NULL,\n  PRIMARY KEY (\"post_id\", \"label_id\"),\n  FOREIGN KEY (\"post_id\") REFERENCES \"sql_posts\" (\"id\") ON DELETE CASCADE,\n  FOREIGN KEY (\"label_id\") REFERENCES \"sql_labels\" (\"id\") ON DELETE CASCADE\n);\nCREATE INDEX IF NOT EXISTS \"ix_post_labels_label_id_62318463\" ON \"post_labels\" (\"label_id\")",
			"mysql":    "CREATE TABLE IF NOT EXISTS `post_labels` (\n  `post_id` BIGINT NOT NULL,\n  `label_id` BIGINT NOT NULL,\n  PRIMARY KEY (`post_id`, `label_id`),\n  FOREIGN KEY (`post_id`) REFERENCES `sql_posts` (`id`) ON DELETE CASCADE,\n  FOREIGN KEY (`label_id`) REFERENCES `sql_labels` (`id`) ON DELETE CASCADE,\n  INDEX `ix_post_labels_label_id_62318463` (`label_id`)\n)",
			"sqlite":   "CREATE TABLE IF NOT EXISTS \"post_labels\" (\n  \"post_id\" INTEGER NOT NULL,\n  \"label_id\" INTEGER NOT NULL,\n  PRIMARY KEY (\"post_id\", \"label_id\"),\n  FOREIGN KEY (\"post_id\") REFERENCES \"sql_posts\" (\"id\") ON DELETE CASCADE,\n  FOREIGN KEY (\"label_id\") REFERENCES \"sql_labels\" (\"id\") ON DELETE CASCADE\n);\nCREATE INDEX IF NOT EXISTS \"ix_post_labels_label_id_62318463\" ON \"post_labels\" (\"label_id\")",
		}},
		{"add foreign key", func(d dialect.Dialect) string { return addForeignKeySQL(d, entFK) }, map[string]string{
			"postgres": `ALTER TABLE "entries" ADD CONSTRAINT "fk_entries_account_id_a850da40" FOREIGN KEY ("account_id") REFERENCES "accounts" ("id")`,
			"mysql":    "ALTER TABLE `entries` ADD CONSTRAINT `fk_entries_account_id_a850da40` FOREIGN KEY (`account_id`) REFERENCES `accounts` (`id`)",
			"sqlite":   `ALTER TABLE "entries" ADD CONSTRAINT "fk_entries_account_id_a850da40" FOREIGN KEY ("account_id") REFERENCES "accounts" ("id")`,
		}},
		{"drop foreign key", func(d dialect.Dialect) string {
			if d.Capabilities().DropForeignKey == "" {
				return "" // SQLite: the constraint is inline, see clear foreign key
			}
			return dropForeignKeySQL(d, entFK)
		}, map[string]string{
			"postgres": `ALTER TABLE "entries" DROP CONSTRAINT IF EXISTS "fk_entries_account_id_a850da40"`,
			"mysql":    "ALTER TABLE `entries` DROP FOREIGN KEY `fk_entries_account_id_a850da40`",
			"sqlite":   ``,
		}},
		{"clear foreign key", func(d dialect.Dialect) string { return clearForeignKeySQL(d, entFK) }, map[string]string{
			"postgres": `UPDATE "entries" SET "account_id" = NULL`,
			"mysql":    "UPDATE `entries` SET `account_id` = NULL",
			"sqlite":   `UPDATE "entries" SET "account_id" = NULL`,
		}},
		{"drop table", func(d dialect.Dialect) string { return dropTableSQL(d, "accounts") }, map[string]string{
			"postgres": `DROP TABLE IF EXISTS "accounts"`,
			"mysql":    "DROP TABLE IF EXISTS `accounts`",
			"sqlite":   `DROP TABLE IF EXISTS "accounts"`,
		}},
	}
	for _, tc := range tests {
		for _, name := range []string{"postgres", "mysql", "sqlite"} {
			d, err := dialect.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.sql(d); got != tc.want[name] {
				t.Errorf("%s on %s:\n got %s\nwant %s", tc.name, name, got, tc.want[name])
			}
		}
	}
}
