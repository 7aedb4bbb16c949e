package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// nodeCommands are the subcommands of `bosun node`, each in a file of its
// own (node_delete.go, ...).
var nodeCommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"delete": cmdNodeDelete,
}

func cmdNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range nodeCommands {
			if !yield(k) {
				return
			}
		}
	})
	if len(args) == 0 || nodeCommands[args[0]] == nil {
		err := fmt.Errorf("node: want a subcommand: %s", strings.Join(names, ", "))
		if len(args) > 0 {
			err = fmt.Errorf("node: unknown subcommand %q: want %s", args[0], strings.Join(names, ", "))
		}
		return &exitError{code: 2, err: err}
	}
	return nodeCommands[args[0]](ctx, args[1:], stdout, stderr)
}
