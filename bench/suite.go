package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
)

// Model is the row of the widely used Go ORM benchmark suite
// (efectn/go-orm-benchmarks), so that figures compare with its.
// raw database/sql and sqlx use it; each ORM has its own copy tagged its way.
type Model struct {
	ID      int64  `db:"id"`
	Name    string `db:"name"`
	Title   string `db:"title"`
	Fax     string `db:"fax"`
	Web     string `db:"web"`
	Age     int    `db:"age"`
	Right   bool   `db:"right"`
	Counter int64  `db:"counter"`
}

// NewModel returns the suite's row values, with a counter no other call
// returned: as in a real program, no two inserts send the same values.
// The suite's own constant row let a library that writes values into the
// SQL text (bun) send the very same text every time, which pgx's
// statement cache then runs as one prepared statement, parsed and planned
// once: a cost no program inserting real data avoids.
func NewModel() *Model {
	return &Model{Name: "Orm Benchmark", Title: "Just a Benchmark for fun", Fax: "99909990", Web: "http://blog.milkpod29.me", Age: 100, Right: true, Counter: modelSeq.Add(1)}
}

// modelSeq numbers the models NewModel makes.
var modelSeq atomic.Int64

// Note is the second table of the unit of work: a note about a model.
type Note struct {
	ID      int64  `db:"id"`
	ModelID int64  `db:"model_id"`
	Body    string `db:"body"`
}

// Op names an operation, one benchmark per library.
type Op string

// The operations, in report order: the units of work first.
const (
	// UnitOfWork is one request: read 10 models, change 3, insert 2 notes,
	// delete 1 note, all in one transaction.
	UnitOfWork Op = "UnitOfWork"
	// LoadChangeSave loads 100 models, changes each and saves them, in one
	// transaction.
	LoadChangeSave Op = "LoadChangeSave100"
	// Insert inserts one model and reads back its key.
	Insert Op = "Insert"
	// InsertMulti inserts 100 models at once and reads back their keys.
	InsertMulti Op = "InsertMulti100"
	// Update sets one column of one model by key.
	Update Op = "Update"
	// GetChangeSave reads one model by key, changes one field, saves it.
	GetChangeSave Op = "GetChangeSave"
	// Read reads one model by key.
	Read Op = "Read"
	// ReadSlice reads 100 models.
	ReadSlice Op = "ReadSlice100"
)

// Ops lists the operations in report order.
var Ops = []Op{UnitOfWork, LoadChangeSave, Insert, InsertMulti, Update, GetChangeSave, Read, ReadSlice}

// OpDoc says what each operation does, for the report.
var OpDoc = map[Op]string{
	UnitOfWork:     "one request in one transaction: read 10 models (one query), change 3, insert 2 notes, delete 1 note by key",
	LoadChangeSave: "in one transaction, load 100 models (one query), change a field of each, save them",
	Insert:         "insert one model, reading back its generated key (values never inserted before)",
	InsertMulti:    "insert 100 models at once, reading back their keys (values never inserted before)",
	Update:         "set one column of one model by key (a new value every time, so every UPDATE writes)",
	GetChangeSave:  "read one model by key, change one field, save it",
	Read:           "read one model by key",
	ReadSlice:      "read 100 models (`WHERE id > ? ORDER BY id LIMIT 100`)",
}

// Step does one operation once; it is what a benchmark iteration calls.
type Step func(ctx context.Context) error

// Library is one way of talking to the database.
type Library struct {
	// Name is the library as the report names it.
	Name string
	// About says which package and settings, for the report.
	About string
	// Steps prepares the library on e and returns its steps; an operation
	// it does not do has no step.
	Steps func(ctx context.Context, e *Env) (map[Op]Step, error)
}

// Libraries lists the libraries in report order; raw first, the baseline
// of every ratio.
var Libraries = []Library{rawLib, rawAgainLib, sqlxLib, gormLib, gormPrepLib, bunLib, tallyLib, tallyGenLib}

// RoundTripsMetric is the unit of the round-trip metric.
const RoundTripsMetric = "roundtrips/op"

// CPUMetric is the unit of the client CPU metric: the benchmark process's
// CPU time (user and system) per operation. It leaves out the server's
// time, so it is the library's own cost, and it varies far less with the
// machine's load than wall time does. SQLite's engine runs in the process
// and is in it.
const CPUMetric = "cpu-ns/op"

// processCPU returns the process's CPU time so far, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// Benchmark returns the benchmark of step on e. It runs the step once
// untimed, so that connecting and first-use preparation are not measured,
// then times it and reports allocations and, on servers, round trips per
// operation.
func Benchmark(e *Env, step Step) func(b *testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		if err := step(ctx); err != nil {
			b.Fatal(err)
		}
		start := e.RoundTrips()
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			if err := step(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), CPUMetric)
		if start >= 0 {
			b.ReportMetric(float64(e.RoundTrips()-start)/float64(b.N), RoundTripsMetric)
		}
	}
}

// want checks a count that a step's result must have.
func want(what string, got, want int) error {
	if got != want {
		return fmt.Errorf("bench: %s: got %d, want %d", what, got, want)
	}
	return nil
}

// want64 is want for row counts.
func want64(what string, got int64, err error, want int64) error {
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("bench: %s: got %d rows, want %d", what, got, want)
	}
	return nil
}
