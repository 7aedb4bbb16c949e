package main

import (
	"context"
	"fmt"
	"io"
	"os"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"bosun/nodes"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Import images into this machine's containerd",
		Args:  cobra.NoArgs,
	}
	imp := &cobra.Command{
		Use:   "import FILE...",
		Short: "Import OCI image archives into containerd, for pods of this node",
		Long: `Import loads OCI (or docker save) image archives into this machine's
containerd, in bosun's namespace, and unpacks them, so that pods of this
node run them without a registry. The archive's index must name the image
(io.containerd.image.name or org.opencontainers.image.ref.name). On a
terminal a progress bar shows the bytes read.`,
		Example: `  bosun image import hello-v1.tar
  bosun image import --containerd-address /run/k3s/containerd/containerd.sock *.tar`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError(cmd, "want one or more image archives")
			}
			return nil
		},
	}
	address := imp.Flags().String("containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	namespace := imp.Flags().String("namespace", "bosun", "containerd namespace")
	imp.RunE = func(cmd *cobra.Command, args []string) error {
		return importImages(cmd.Context(), *address, *namespace, args, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	cmd.AddCommand(imp)
	return parentCmd(cmd)
}

// importImages imports and unpacks each archive, showing the bytes read
// on a terminal (stderr) and a plain line per archive otherwise.
func importImages(ctx context.Context, address, namespace string, files []string, stdout, stderr io.Writer) error {
	c, err := containerd.New(address)
	if err != nil {
		return fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, namespace)
	for _, file := range files {
		names, err := importArchive(ctx, c, file, stderr)
		for _, n := range names {
			fmt.Fprintln(stdout, "imported", n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func importArchive(ctx context.Context, c *containerd.Client, file string, stderr io.Writer) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	var size int64 = -1
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	var r io.Reader = f
	if isTerminal(stderr) {
		bar := progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("importing "+file),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100e6),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
			progressbar.OptionClearOnFinish(),
		)
		defer bar.Close()
		pr := progressbar.NewReader(f, bar)
		r = &pr
	}
	return nodes.ImportArchive(ctx, c, file, r)
}

// isTerminal says whether w is a terminal: progress bars only go there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
