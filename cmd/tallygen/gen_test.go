package main

import (
	"database/sql"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tallyorm/tally/mapper"
	"github.com/tallyorm/tally/testdata/tallygen/kinds"
	"github.com/tallyorm/tally/testdata/tallygen/kinds/ext"
	"github.com/tallyorm/tally/testdata/tallygen/stale"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/tallygen")

// goldenDir holds one input package per case; a package that generates
// holds its golden output as its own tally_gen.go (so that the build
// compiles it), one that fails holds error.golden.
const goldenDir = "../../testdata/tallygen"

var goldenCases = []struct {
	dir    string
	types  []string // -type
	fails  bool
	golden string // the error's golden file, when not error.golden
}{
	{dir: "kinds"},
	{dir: "typeflag", types: []string{"Account"}},
	{dir: "errors", fails: true},
	{dir: "nomodels", fails: true},
	{dir: "broken", fails: true},
	{dir: "typeflag", types: []string{"Account", "Missing"}, fails: true, golden: "missing_type.golden"},
}

func TestGoldenOutputs(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.dir+strings.TrimSuffix("/"+tc.golden, "/"), func(t *testing.T) {
			dir := filepath.Join(goldenDir, tc.dir)
			src, err := Generate(dir, tc.types)
			golden := filepath.Join(dir, OutputName)
			got := string(src)
			if tc.fails {
				if err == nil {
					t.Fatalf("Generate succeeded, want an error")
				}
				name := tc.golden
				if name == "" {
					name = "error.golden"
				}
				golden, got = filepath.Join(dir, name), err.Error()+"\n"
			} else if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/tallygen -update)", err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("output differs from %s (-want +got); if the change is intended, run go test ./cmd/tallygen -update:\n%s", golden, d)
			}
		})
	}
}

func TestOutputIsDeterministic(t *testing.T) {
	dir := filepath.Join(goldenDir, "kinds")
	first, err := Generate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := Generate(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatal("two runs on the same package wrote different files")
		}
	}
	if !strings.HasPrefix(string(first), header) {
		t.Errorf("output starts %q, want the generated-code header %q", strings.SplitN(string(first), "\n", 2)[0], header)
	}
}

// TestGoldenOutputsCompile builds and vets every golden package with its
// generated file, as a user's build would.
func TestGoldenOutputsCompile(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH:", err)
	}
	var pkgs []string
	for _, tc := range goldenCases {
		if !tc.fails {
			pkgs = append(pkgs, "./testdata/tallygen/"+tc.dir)
		}
	}
	for _, verb := range []string{"build", "vet"} {
		cmd := exec.Command(goTool, append([]string{verb}, pkgs...)...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %s %v: %v\n%s", verb, pkgs, err, out)
		}
	}
}

// TestFingerprintMatchesReflection checks that the generator summarises a
// struct exactly as mapper.Fingerprint does at run time, for every kind.
func TestFingerprintMatchesReflection(t *testing.T) {
	for _, m := range []any{kinds.Everything{}, kinds.Other{}, kinds.Pair{}, kinds.Keyed{}, kinds.Odd{}, kinds.Unsigned{}, kinds.Doc{}} {
		tab, err := mapper.NewRegistry().TableOf(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !strings.HasPrefix(reflect.TypeOf(mapper.Unwrap(tab.Acc)).Name(), "tally") {
			t.Errorf("%T uses accessor %T, want the generated one", m, tab.Acc)
		}
	}
}

// TestStaleMapperIsRefused uses a package whose structs changed after
// their tally_gen.go was written (a field added to one, a tag changed in
// the other): registering them must fail and say what to do. (A field
// retyped makes tally_gen.go fail to compile, which is caught sooner.)
func TestStaleMapperIsRefused(t *testing.T) {
	for _, m := range []any{stale.Added{}, stale.Retagged{}} {
		_, err := mapper.NewRegistry().TableOf(m)
		var de *mapper.DefinitionError
		var se *mapper.StaleError
		if !errors.As(err, &de) || !errors.As(err, &se) {
			t.Fatalf("%T: got %v, want a *DefinitionError wrapping a *StaleError", m, err)
		}
		typeName := reflect.TypeOf(m).String()
		if msg := err.Error(); !strings.Contains(msg, typeName) || !strings.Contains(msg, "run go generate") {
			t.Errorf("%T: error %q, want it to name %s and say \"run go generate\"", m, msg, typeName)
		}
		// The reflective mapper still maps it: only the compiled one is stale.
		if _, err := mapper.NewRegistry(mapper.Reflective()).TableOf(m); err != nil {
			t.Errorf("%T reflectively: %v", m, err)
		}
	}
	if _, err := mapper.NewRegistry().TableOf(stale.Fresh{}); err != nil {
		t.Errorf("an unchanged model beside stale ones: %v", err)
	}
}

// TestGeneratedAccessorsMatchReflection runs every accessor method of the
// generated mappers of the kinds package against the reflective mapper of
// the same structs, on the same objects.
func TestGeneratedAccessorsMatchReflection(t *testing.T) {
	note, note2 := "n", "m"
	money := kinds.Money(7)
	pt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	pb := []byte("pb")
	f, yes := 1.5, true
	i64 := int64(9)
	full := func() *kinds.Everything {
		return &kinds.Everything{
			Base: kinds.Base{ID: 3, Created: pt}, I: -1, I8: -8, I16: 16, I32: 32, I64: 1 << 40, U: 1, U8: 8, U16: 16, U32: 32, U64: 1 << 63,
			F32: 1.25, F64: 2.5, B: true, S: "s", Bytes: []byte("bytes"), T: pt,
			Money: 100, Name: "name", Flag: true, Ratio: 0.5, Small: 3, Data: kinds.Data("data"), Code: "code",
			PI64: &i64, PS: &note, PB: &yes, PF: &f, PT: &pt, PMoney: &money, PBytes: &pb,
			NS: sql.NullString{String: "ns", Valid: true}, NI: sql.NullInt64{Int64: 5, Valid: true},
			NF: sql.NullFloat64{Float64: 1, Valid: true}, NT: sql.NullTime{Time: pt, Valid: true}, NB: sql.NullBool{Bool: true, Valid: true},
			GI: sql.Null[int64]{V: 4, Valid: true}, GB: sql.Null[[]byte]{V: []byte("gb"), Valid: true}, GT: sql.Null[time.Time]{V: pt, Valid: true},
			PNS: &sql.NullString{String: "pns", Valid: true}, Loc: kinds.Point{X: 1, Y: 2}, UUID: ext.UUID{1, 2, 3},
			Lbl: ext.NewLabels("a", "b"), Version: 2, ReadOnly: "ro", OtherID: 1,
		}
	}
	// Each change is made to a fresh full object, by assignment or in place.
	changes := map[string]func(e *kinds.Everything){
		"i": func(e *kinds.Everything) { e.I = 0 }, "u64": func(e *kinds.Everything) { e.U64-- },
		"f32": func(e *kinds.Everything) { e.F32 = 0 }, "bytes": func(e *kinds.Everything) { e.Bytes[0] = 'X' },
		"bytes_nil": func(e *kinds.Everything) { e.Bytes = nil }, "data": func(e *kinds.Everything) { e.Data[0] = 'X' },
		"t":      func(e *kinds.Everything) { e.T = e.T.Add(time.Second) },
		"t_zone": func(e *kinds.Everything) { e.T = e.T.In(time.FixedZone("x", 3600)) }, // the same instant: no change
		"p_s":    func(e *kinds.Everything) { *e.PS = "in place" }, "p_s_nil": func(e *kinds.Everything) { e.PS = nil },
		"p_s_other": func(e *kinds.Everything) { e.PS = &note2 }, "p_t": func(e *kinds.Everything) { *e.PT = pt.Add(1) },
		"p_bytes": func(e *kinds.Everything) { (*e.PBytes)[0] = 'X' }, "p_money": func(e *kinds.Everything) { *e.PMoney++ },
		"ns": func(e *kinds.Everything) { e.NS.Valid = false }, "nt": func(e *kinds.Everything) { e.NT.Time = pt.Add(1) },
		"gb": func(e *kinds.Everything) { e.GB.V[0] = 'X' }, "pns": func(e *kinds.Everything) { e.PNS.String = "x" },
		"pns_nil": func(e *kinds.Everything) { e.PNS = nil }, "loc": func(e *kinds.Everything) { e.Loc.Y = 3 },
		"uuid": func(e *kinds.Everything) { e.UUID[15] = 1 }, "lbl": func(e *kinds.Everything) { e.Lbl.List()[0] = "z" },
		"nan": func(e *kinds.Everything) { e.F64 = nanValue() },
		// Strings are compared by data pointer first: an equal copy is no
		// change, an empty non-NULL string is not the snapshot's NULL.
		"s": func(e *kinds.Everything) { e.S = "t" }, "s_copy": func(e *kinds.Everything) { e.S = string([]byte("s")) },
		"p_s_empty": func(e *kinds.Everything) { e.PS = new(string) },
		"p_s_copy":  func(e *kinds.Everything) { c := string([]byte(note)); e.PS = &c },
	}
	gen, refl := tables(t, kinds.Everything{})
	for name, change := range changes {
		o1, o2 := full(), full()
		s1, s2 := gen.Acc.Snapshot(o1), refl.Acc.Snapshot(o2)
		change(o1)
		change(o2)
		got, want := colNames(gen.Acc.Changed(o1, s1, nil)), colNames(refl.Acc.Changed(o2, s2, nil))
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("change %s: Changed differs (-reflective +generated):\n%s", name, d)
		}
		if u := gen.Differ().(mapper.ChangeChecker).Unchanged(o1, s1); u != (len(got) == 0) {
			t.Errorf("change %s: Unchanged = %v with Changed = %v", name, u, got)
		}
		gen.Acc.Restore(o1, s1)
		refl.Acc.Restore(o2, s2)
		if c := gen.Acc.Changed(o1, s1, nil); len(c) != 0 {
			t.Errorf("change %s: after Restore, Changed = %v, want none", name, colNames(c))
		}
		compareValues(t, "after restore of "+name, gen, refl, o1, o2)
	}
	// A NULL *string snapshot against an empty string, and the reverse.
	for _, from := range []*string{nil, new(string)} {
		o1, o2 := full(), full()
		o1.PS, o2.PS = from, from
		s1, s2 := gen.Acc.Snapshot(o1), refl.Acc.Snapshot(o2)
		if from == nil {
			o1.PS, o2.PS = new(string), new(string)
		} else {
			o1.PS, o2.PS = nil, nil
		}
		got, want := colNames(gen.Acc.Changed(o1, s1, nil)), colNames(refl.Acc.Changed(o2, s2, nil))
		if d := cmp.Diff(want, got); d != "" || len(got) != 1 || gen.Differ().(mapper.ChangeChecker).Unchanged(o1, s1) {
			t.Errorf("PS from %v: Changed = %v, reflective %v; want p_s alone, and not Unchanged", from, got, want)
		}
		gen.Acc.Restore(o1, s1)
		if (o1.PS == nil) != (from == nil) {
			t.Errorf("PS from %v: restored %v", from, o1.PS)
		}
	}
	// Values of objects and snapshots, scan targets, keys, and Set.
	o1, o2 := full(), full()
	compareValues(t, "object", gen, refl, o1, o2)
	compareValues(t, "snapshot", gen, refl, gen.Acc.Snapshot(o1), refl.Acc.Snapshot(o2))
	compareValues(t, "snapshot of a snapshot", gen, refl, gen.Acc.Snapshot(gen.Acc.Snapshot(o1)), refl.Acc.Snapshot(refl.Acc.Snapshot(o2)))
	empty1, empty2 := new(kinds.Everything), new(kinds.Everything)
	compareValues(t, "zero object", gen, refl, empty1, empty2)
	compareValues(t, "zero snapshot", gen, refl, gen.Acc.Snapshot(empty1), refl.Acc.Snapshot(empty2))
	for i, c := range gen.Columns {
		g, r := gen.Acc.Addr(o1, c), refl.Acc.Addr(o2, refl.Columns[i])
		if reflect.TypeOf(g) == reflect.TypeOf(r) {
			continue
		}
		// A *T column scans through mapper.PtrScan instead of a **T: it
		// must store what assigning the same value stores.
		_, ok := g.(sql.Scanner)
		if !ok || reflect.TypeOf(r).Elem() != c.Type {
			t.Errorf("Addr(%s) is a %T, reflective %T", c.Name, g, r)
			continue
		}
		sample := refl.Acc.Value(full(), refl.Columns[i])
		for _, src := range []any{nil, sample} {
			x1, x2 := full(), full()
			if err := gen.Acc.Addr(x1, c).(sql.Scanner).Scan(src); err != nil {
				t.Errorf("scan %v into %s: %v", src, c.Name, err)
			}
			if err := refl.Acc.Set(x2, refl.Columns[i], src); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(refl.Acc.Value(x2, refl.Columns[i]), gen.Acc.Value(x1, c), valueOpts); d != "" {
				t.Errorf("scan %v into %s (-assigned +scanned):\n%s", src, c.Name, d)
			}
		}
	}
	// MySQL sends text as []byte: it scans into a *string as database/sql
	// would convert it.
	var ps *string
	if err := (mapper.PtrScan[string]{P: &ps}).Scan([]byte("text")); err != nil || ps == nil || *ps != "text" {
		t.Errorf("PtrScan[string] of []byte: %v, %v", ps, err)
	}
	for _, v := range []any{int32(5), int64(-1), 1000, "x", nil, &note, note, 2.5, []byte("q"), pt} {
		for i, c := range gen.Columns {
			rc := refl.Columns[i]
			for _, onSnap := range []bool{false, true} {
				var x1, x2 any = full(), full()
				if onSnap {
					x1, x2 = gen.Acc.Snapshot(x1), refl.Acc.Snapshot(x2)
				}
				e1, e2 := gen.Acc.Set(x1, c, v), refl.Acc.Set(x2, rc, v)
				if (e1 == nil) != (e2 == nil) {
					t.Errorf("Set(%s, %T %v) on snapshot=%v: error %v, reflective %v", c.Name, v, v, onSnap, e1, e2)
					continue
				}
				if d := cmp.Diff(refl.Acc.Value(x2, rc), gen.Acc.Value(x1, c), valueOpts); d != "" {
					t.Errorf("Set(%s, %T %v) on snapshot=%v: value differs (-reflective +generated):\n%s", c.Name, v, v, onSnap, d)
				}
			}
		}
	}
	// Keys of every key shape, on objects and snapshots.
	keyed := []struct{ gen, refl any }{
		{&kinds.Pair{Kind: "k", N: 2}, &kinds.Pair{Kind: "k", N: 2}},
		{&kinds.Keyed{Code: "c"}, &kinds.Keyed{Code: "c"}},
		{&kinds.Odd{T: pt, B: true, F: 0.25, UUID: ext.UUID{9}}, &kinds.Odd{T: pt, B: true, F: 0.25, UUID: ext.UUID{9}}},
		{&kinds.Unsigned{ID: 1<<64 - 1}, &kinds.Unsigned{ID: 1<<64 - 1}},
		{o1, o2},
	}
	for _, k := range keyed {
		g, r := tables(t, k.gen)
		kg, kr := g.Acc.Key(k.gen), r.Acc.Key(k.refl)
		if kg != kr || g.Acc.Key(g.Acc.Snapshot(k.gen)) != kr {
			t.Errorf("%T: Key = %+v, of snapshot %+v; reflective %+v", k.gen, kg, g.Acc.Key(g.Acc.Snapshot(k.gen)), kr)
		}
		var vals []any
		for _, c := range r.PK {
			vals = append(vals, r.Acc.Value(k.refl, c))
		}
		if ko, err := g.KeyOf(vals...); err != nil || ko != kg {
			t.Errorf("%T: KeyOf(%v) = %+v, %v; want the object's key %+v", k.gen, vals, ko, err, kg)
		}
	}
}

// valueOpts compares bound values: times by instant, NaN equal to itself.
var valueOpts = cmp.Options{cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmp.AllowUnexported(ext.Labels{}), cmp.Comparer(func(a, b float64) bool { return a == b || a != a && b != b })}

func compareValues(t *testing.T, what string, gen, refl *mapper.Table, x1, x2 any) {
	t.Helper()
	for i, c := range gen.Columns {
		if d := cmp.Diff(refl.Acc.Value(x2, refl.Columns[i]), gen.Acc.Value(x1, c), valueOpts); d != "" {
			t.Errorf("%s: Value(%s) differs (-reflective +generated):\n%s", what, c.Name, d)
		}
	}
}

func tables(t *testing.T, m any) (gen, refl *mapper.Table) {
	t.Helper()
	gen, err := mapper.NewRegistry().TableOf(m)
	if err != nil {
		t.Fatal(err)
	}
	refl, err = mapper.NewRegistry(mapper.Reflective()).TableOf(m)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.TypeOf(gen.Acc) == reflect.TypeOf(refl.Acc) {
		t.Fatalf("%T: the generated accessor is not installed", m)
	}
	return gen, refl
}

func colNames(cols []*mapper.Column) []string {
	var out []string
	for _, c := range cols {
		out = append(out, c.Name)
	}
	return out
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}
