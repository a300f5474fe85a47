package orm_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tallyorm/tally/internal/advmodels"
	"github.com/tallyorm/tally/mapper"
	"github.com/tallyorm/tally/orm"
)

// The models of internal/advmodels have the column shapes that a
// generated mapper most easily gets wrong: json columns of maps, slices and
// structs, []byte and pointer columns changed in place, times of
// nanoseconds in other zones, named and sql.Null kinds, an embedded struct
// and the time columns Tally sets. TestGeneratedMappersMatchReflectiveOnHardShapes
// runs one session scenario over them with the generated mappers and with
// orm.WithReflectiveMappers, on each database, and requires identical
// traces (as TestGeneratedAndReflectiveMappersBehaveIdentically does for
// the common models): statements and arguments, IsDirty answers, objects
// after failed commits and merges, and rows read back.

// advNow stands in the trace for a time Tally stamped at commit (created,
// updated, softdelete), which differs between the two runs.
const advNow = "<now>"

// advStampedAfter is earlier than any time Tally stamps and later than
// any the scenario sets itself.
var advStampedAfter = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// advArg renders a bound argument as the driver receives it: a Valuer's
// value, a time with its zone and nanoseconds.
func advArg(v any) string {
	if dv, ok := v.(driver.Valuer); ok {
		if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || !rv.IsNil() {
			x, err := dv.Value()
			if err != nil {
				return "error: " + err.Error()
			}
			v = x
		}
	}
	switch x := v.(type) {
	case time.Time:
		if x.After(advStampedAfter) && x.Year() < 2030 {
			return advNow
		}
		return x.Format(time.RFC3339Nano)
	case *time.Time:
		if x == nil {
			return "nil *time.Time"
		}
		return "&" + advArg(*x)
	case []byte:
		if x == nil {
			return "nil []byte"
		}
		return fmt.Sprintf("[]byte%q", x)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return "&" + advArg(rv.Elem().Interface())
	}
	return fmt.Sprintf("%v", v)
}

// advView renders an object as JSON: times with their zone and
// nanoseconds, nil apart from empty for slices and maps. Times Tally
// stamped are replaced by advNow.
func advView(obj any) string {
	b, err := json.Marshal(obj)
	if err != nil {
		return "error: " + err.Error()
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "error: " + err.Error()
	}
	for k, v := range m {
		if s, ok := v.(string); ok {
			if tm, err := time.Parse(time.RFC3339Nano, s); err == nil && tm.After(advStampedAfter) && tm.Year() < 2030 {
				m[k] = advNow
			}
		}
		if nt, ok := v.(map[string]any); ok {
			if s, ok := nt["Time"].(string); ok {
				if tm, err := time.Parse(time.RFC3339Nano, s); err == nil && tm.After(advStampedAfter) && tm.Year() < 2030 {
					nt["Time"] = advNow
				}
			}
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

func TestGeneratedMappersMatchReflectiveOnHardShapes(t *testing.T) {
	models := []any{advmodels.Doc{}, advmodels.Mixed{}}
	compareMappers(t, models, 100, func(a any) any { return advArg(a) }, func(t *testing.T, eng *orm.Engine, rec func(string, any)) {
		advDocScenario(t, eng, rec)
		advMixedScenario(t, eng, rec)
	})
}

// advDocScenario changes json columns in place and by assignment, fails a
// commit after a hook changed them, and merges a detached copy.
func advDocScenario(t *testing.T, eng *orm.Engine, rec func(string, any)) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	s := eng.NewSession()
	defer s.Close()
	d := &advmodels.Doc{Attrs: map[string]string{"a": "1"}, List: []int64{1, 2},
		Meta: advmodels.Meta{Tags: []string{"x"}, Attrs: map[string]string{"k": "v"}, Score: 1.5}, Text: "hi",
		Any: map[string]any{"k": []any{1.0, "two"}}}
	empty := &advmodels.Doc{Attrs: map[string]string{}, List: []int64{}}
	must(s.Add(d, empty))
	must(s.Commit(ctx))
	rec("doc insert", []any{advView(d), advView(empty), s.IsDirty(d), s.IsDirty(empty)})

	d.Attrs["a"] = "2"
	rec("doc map changed in place", s.IsDirty(d))
	must(s.Commit(ctx))
	d.List[0] = 9
	rec("doc slice changed in place", s.IsDirty(d))
	must(s.Commit(ctx))
	d.Meta.Tags[0] = "y"
	rec("doc struct's slice changed in place", s.IsDirty(d))
	must(s.Commit(ctx))
	d.Meta.Attrs["k"] = "w"
	rec("doc struct's map changed in place", s.IsDirty(d))
	must(s.Commit(ctx))
	d.Opt = &advmodels.Meta{Attrs: map[string]string{}}
	must(s.Commit(ctx))
	d.Opt.Attrs["z"] = "1"
	rec("doc pointer's map changed in place", s.IsDirty(d))
	must(s.Commit(ctx))
	d.Opt.Next = &advmodels.Meta{Tags: []string{"n"}}
	must(s.Commit(ctx))
	d.Opt.Next.Tags[0] = "m"
	rec("doc nested pointer's slice changed in place", s.IsDirty(d))
	must(s.Commit(ctx))
	rec("doc after updates", advView(d))
	s.Close()

	// Read back in a new session: nothing is dirty, in-place changes are.
	s = eng.NewSession()
	defer s.Close()
	got, err := orm.Get[advmodels.Doc](ctx, s, d.ID)
	must(err)
	gotEmpty, err := orm.Get[advmodels.Doc](ctx, s, empty.ID)
	must(err)
	rec("doc loaded", []any{advView(got), advView(gotEmpty), s.IsDirty(got), s.IsDirty(gotEmpty)})
	// Both mappers once shared an interface's map with the snapshot, and
	// so saw no change: a lost update.
	gotEmpty.Any = map[string]any{}
	must(s.Commit(ctx))
	gotEmpty.Any.(map[string]any)["k"] = "changed"
	if !s.IsDirty(gotEmpty) {
		t.Errorf("a change in place to the map a json column of type any holds is not seen")
	}
	must(s.Commit(ctx))
	got.Opt.Tags = append(got.Opt.Tags, "t")
	rec("doc loaded pointer changed in place", s.IsDirty(got))

	// A hook changes json columns, and the commit fails on a stale
	// version: the session must be as before Commit.
	other := eng.NewSession()
	defer other.Close()
	od, err := orm.Get[advmodels.Doc](ctx, other, d.ID)
	must(err)
	od.Text = "other"
	must(other.Commit(ctx))
	got.Text = "hook"
	err = s.Commit(ctx)
	rec("doc stale after hook", []any{errors.Is(err, orm.ErrStaleData), advView(got), s.IsDirty(got)})
	must(s.Rollback(ctx))

	// Merge a detached copy: its json values are copied, sharing nothing.
	s = eng.NewSession()
	defer s.Close()
	cur, err := orm.Get[advmodels.Doc](ctx, s, d.ID)
	must(err)
	det := &advmodels.Doc{ID: cur.ID, Version: cur.Version, Attrs: map[string]string{"m": "1"}, List: []int64{5},
		Meta: advmodels.Meta{Tags: []string{"m"}}, Text: "merged"}
	merged, err := orm.Merge(ctx, s, det)
	rec("doc merge", []any{errText(err), merged == cur, advView(cur), s.IsDirty(cur)})
	if err == nil {
		det.Attrs["m"] = "changed after merge"
		det.List[0] = 6
		rec("doc merge shares nothing", advView(cur))
		must(s.Commit(ctx))
		rec("doc merged and committed", []any{advView(cur), s.IsDirty(cur)})
	}
	rows, err := orm.Query[advmodels.Doc](s).NoTrack().OrderBy("id").All(ctx)
	must(err)
	var views []string
	for _, r := range rows {
		views = append(views, advView(r))
	}
	rec("doc rows", views)
}

// advMixedScenario changes bytes, pointers, times and nullable kinds in
// place, fails a commit after a hook changed a time, merges, and soft
// deletes.
func advMixedScenario(t *testing.T, eng *orm.Engine, rec func(string, any)) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	zone := time.FixedZone("plus3", 3*3600)
	fixed := time.Date(2024, 3, 4, 5, 6, 7, 891234567, zone)
	// A time with a monotonic clock reading, whose wall clock is fixed.
	now := time.Now()
	mono := now.Add(fixed.Sub(now))
	pdata := []byte("pd")
	pi, ps, pc := int64(7), "ps", advmodels.Cents(3)
	s := eng.NewSession()
	defer s.Close()
	m := &advmodels.Mixed{Data: []byte("abc"), PData: &pdata, At: mono, PAt: &fixed, PI: &pi, PS: &ps,
		Amount: 100, PAmount: &pc, GB: sql.Null[[]byte]{V: []byte("gb"), Valid: true}}
	m.NS.String, m.NS.Valid = "ns", true
	m.NT.Time, m.NT.Valid = fixed, true
	m.GS.V, m.GS.Valid = "gs", true
	nulls := &advmodels.Mixed{Data: []byte{}}
	must(s.Add(m, nulls))
	must(s.Commit(ctx))
	rec("mixed insert", []any{advView(m), advView(nulls), s.IsDirty(m), s.IsDirty(nulls)})

	type change struct {
		name string
		fn   func()
	}
	for _, c := range []change{
		{"data in place", func() { m.Data[0] = 'X' }},
		{"data emptied", func() { m.Data = m.Data[:0] }},
		{"data nil", func() { m.Data = nil }},
		{"pdata in place", func() { (*m.PData)[0] = 'Q' }},
		{"at same instant elsewhere", func() { m.At = m.At.In(zone) }},
		{"at nanoseconds", func() { m.At = m.At.Add(time.Nanosecond) }},
		{"pat in place", func() { *m.PAt = m.PAt.Add(time.Second) }},
		{"pi in place", func() { *m.PI++ }},
		{"ps in place", func() { *m.PS = "changed" }},
		{"pamount in place", func() { *m.PAmount++ }},
		{"ns invalid", func() { m.NS.Valid = false }},
		{"nt later", func() { m.NT.Time = m.NT.Time.Add(time.Microsecond) }},
		{"gs", func() { m.GS.V = "gs2" }},
		{"gb in place", func() { m.GB.V[0] = 'Z' }},
		{"nulls get values", func() { nulls.Data = nil; nulls.PS = new(string); nulls.PData = new([]byte) }},
	} {
		c.fn()
		rec("mixed "+c.name, []bool{s.IsDirty(m), s.IsDirty(nulls)})
		must(s.Commit(ctx))
		rec("mixed after "+c.name, []any{advView(m), advView(nulls), s.IsDirty(m), s.IsDirty(nulls)})
	}
	s.Close()

	// A hook sets a time, and the commit fails on a stale version: the
	// object must be as before Commit.
	s = eng.NewSession()
	defer s.Close()
	got, err := orm.Get[advmodels.Mixed](ctx, s, m.ID)
	must(err)
	rec("mixed loaded", []any{advView(got), s.IsDirty(got)})
	other := eng.NewSession()
	defer other.Close()
	od, err := orm.Get[advmodels.Mixed](ctx, other, m.ID)
	must(err)
	od.Amount = 1
	must(other.Commit(ctx))
	hook := "hook"
	got.PS = &hook
	got.At = time.Date(2024, 5, 6, 7, 8, 9, 123456789, zone)
	err = s.Commit(ctx)
	rec("mixed failed commit after hook", []any{errors.Is(err, orm.ErrStaleData), advView(got), s.IsDirty(got)})
	must(s.Rollback(ctx))

	// Merge a detached copy with a time of nanoseconds equal, at the
	// microseconds Tally keeps, to the row's, and bytes the caller then
	// changes.
	s = eng.NewSession()
	defer s.Close()
	cur, err := orm.Get[advmodels.Mixed](ctx, s, m.ID)
	must(err)
	det := *cur
	det.Data = []byte("merged")
	det.At = cur.At.Add(300 * time.Nanosecond).In(zone)
	det.PS = nil
	merged, err := orm.Merge(ctx, s, &det)
	rec("mixed merge", []any{errText(err), merged == cur, advView(cur), s.IsDirty(cur)})
	det.Data[0] = 'M'
	rec("mixed merge shares nothing", advView(cur))
	must(s.Commit(ctx))
	rec("mixed merged and committed", []any{advView(cur), s.IsDirty(cur)})
	must(s.Delete(cur))
	must(s.Commit(ctx))
	n, err := orm.Query[advmodels.Mixed](s).Count(ctx)
	must(err)
	rec("mixed soft deleted", []any{n, advView(cur)})
}

// TestGeneratedPointerToBytesScanCopiesTheDriversBuffer checks the scan
// target that generated mappers give a *[]byte column: MySQL's driver
// hands it bytes in a buffer it reuses for the next row, so the value must
// be copied, as database/sql copies it for the reflective mapper's **[]byte.
// (On MySQL the hard-shapes scenario then saw another row's bytes.)
func TestGeneratedPointerToBytesScanCopiesTheDriversBuffer(t *testing.T) {
	buf := []byte("row one")
	var p *[]byte
	if err := (mapper.PtrScan[[]byte]{P: &p}).Scan(buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "ROW TWO") // the driver reads the next row into its buffer
	if p == nil || string(*p) != "row one" {
		t.Fatalf("scanned %q, then the driver reused its buffer: the field holds %q, want %q", "row one", deref(p), "row one")
	}
	var empty *[]byte
	if err := (mapper.PtrScan[[]byte]{P: &empty}).Scan([]byte{}); err != nil || empty == nil || *empty == nil {
		t.Errorf("scanning empty bytes: %v, %v; want a pointer to empty, non-nil bytes", empty, err)
	}
}

func deref(p *[]byte) string {
	if p == nil {
		return "<nil>"
	}
	return string(*p)
}
