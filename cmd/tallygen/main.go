// Command tallygen writes compiled mappers for Tally models, so that
// sessions read and write their fields without reflection.
//
// Put one line in the package that declares the models and mark them:
//
//	//go:generate go run github.com/tallyorm/tally/cmd/tallygen
//
//	//tally:model
//	type Account struct { ... }
//
// `go generate ./...` then writes tally_gen.go beside them: per model, an
// accessor (scan targets, bind values, key, snapshot, diff, restore, each
// written out field by field), a compact snapshot type, and the typed
// column names AccountCols and AccountDesc; its init registers the accessors
// with mapper.RegisterGenerated. Every session uses them with no change to
// service code. A struct changed since generation is refused when first
// used, with "run go generate".
//
// Usage:
//
//	tallygen [-type T1,T2] [dir]
//
// dir defaults to the current directory (go generate runs tallygen in the
// package's directory). -type names the models instead of, or as well as,
// the //tally:model comments. A model tallygen cannot map is an error with
// its file:line and the reason, and no file is written.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	typeNames := flag.String("type", "", "comma-separated model type names (in addition to //tally:model)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tallygen [-type T1,T2] [dir]")
		flag.PrintDefaults()
	}
	flag.Parse()
	dir := "."
	switch flag.NArg() {
	case 0:
	case 1:
		dir = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	var names []string
	if *typeNames != "" {
		names = strings.Split(*typeNames, ",")
	}
	src, err := Generate(dir, names)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(dir, OutputName), src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "tallygen:", err)
		os.Exit(1)
	}
}
