// Command chartcheck checks charts/kreload and manifests/ the way a user would meet them:
// helm lint, helm template with the values that change what is rendered, the schema's
// refusal of a wrong type, helm package keeping the real webhook files, and that the
// webhook configurations both installs render are webhook/*.yaml unchanged. With -kubectl
// and -kubeconfig it also applies every rendering with a server-side dry run, so the real
// API server (and cert-manager's CRDs, which must be installed) validates them.
//
//	cd hack/helm/chartcheck && go run . -helm "$(../../helm.sh)/helm" -repo ../../.. [-kubectl kubectl -kubeconfig kc]
//
// Its own module, so that changing it never changes the key of the cached helm build.
//
// The dry runs need the namespaces kreload, team-a and team-b; chartcheck creates them, so
// point it only at a throwaway control plane.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

type object = map[string]any

var (
	helm       = flag.String("helm", "helm", "helm binary")
	repo       = flag.String("repo", ".", "repository root")
	kubectl    = flag.String("kubectl", "", "kubectl binary; with -kubeconfig, dry-run every rendering on the server")
	kubeconfig = flag.String("kubeconfig", "", "kubeconfig of a throwaway API server")
	failures   int
)

func main() {
	flag.Parse()
	chart := filepath.Join(*repo, "charts", "kreload")
	check("helm lint", func() error { _, err := run(nil, *helm, "lint", chart); return err })

	renders := map[string][]string{
		"default":     nil,
		"enableHA":    {"--set", "reloader.enableHA=true"},
		"namespaced":  {"--set", "reloader.watchGlobally=false", "--set", "reloader.namespaces={team-a,team-b}"},
		"create+del":  {"--set", "reloader.reloadOnCreate=true", "--set", "reloader.reloadOnDelete=true"},
		"mutating":    {"--set", "kreload.sourcesWebhookKind=Mutating"},
		"ignoreKinds": {"--set", "reloader.ignoreSecrets=true", "--set", "reloader.ignoreJobs=true"},
	}
	docs := map[string][]object{}
	for _, name := range sortedKeys(renders) {
		check("helm template "+name, func() error {
			out, err := run(nil, *helm, append([]string{"template", "kreload", chart, "-n", "kreload"}, renders[name]...)...)
			if err != nil {
				return err
			}
			docs[name], err = parse(out)
			return err
		})
	}

	files := map[string]object{}
	for _, f := range []string{"validating.yaml", "mutating.yaml"} {
		raw, err := os.ReadFile(filepath.Join(*repo, "webhook", f))
		if err != nil {
			fatal(err)
		}
		var o object
		if err := yaml.Unmarshal(raw, &o); err != nil {
			fatal(fmt.Errorf("%s: %w", f, err))
		}
		files[name(o)] = o
	}
	check("chart webhooks are webhook/*.yaml", func() error { return sameWebhooks(docs["default"], files) })
	check("namespaced mode: Roles, no ClusterRole", func() error {
		d := docs["namespaced"]
		if find(d, "ClusterRole", "kreload") != nil || find(d, "ClusterRoleBinding", "kreload") != nil {
			return errors.New("a ClusterRole or ClusterRoleBinding is rendered")
		}
		for _, ns := range []string{"team-a", "team-b"} {
			if !slices.ContainsFunc(d, func(o object) bool {
				return kind(o) == "Role" && name(o) == "kreload" && get(o, "metadata", "namespace") == ns
			}) {
				return fmt.Errorf("no Role kreload in %s", ns)
			}
		}
		args := fmt.Sprint(get(find(d, "Deployment", "kreload"), "spec", "template", "spec", "containers"))
		if !strings.Contains(args, "--namespaces=team-a,team-b") {
			return errors.New("the Deployment does not pass --namespaces=team-a,team-b")
		}
		return nil
	})
	check("reloadOnCreate/Delete add CREATE and DELETE", func() error {
		ops := fmt.Sprint(get(find(docs["create+del"], "ValidatingWebhookConfiguration", "kreload-sources"), "webhooks"))
		if !strings.Contains(ops, "CREATE") || !strings.Contains(ops, "DELETE") {
			return fmt.Errorf("sources webhook: %s", ops)
		}
		return nil
	})
	check("sourcesWebhookKind=Mutating", func() error {
		if find(docs["mutating"], "MutatingWebhookConfiguration", "kreload-sources") == nil {
			return errors.New("no MutatingWebhookConfiguration kreload-sources")
		}
		return nil
	})
	check("schema refuses autoReloadAll=maybe", func() error {
		out, err := run(nil, *helm, "template", chart, "--set", "reloader.autoReloadAll=maybe")
		if err == nil {
			return errors.New("rendered anyway")
		}
		if !strings.Contains(out, "autoReloadAll") || !strings.Contains(out, "boolean") {
			return fmt.Errorf("unclear message: %s", out)
		}
		return nil
	})
	check("helm package stores the real webhook files", func() error { return packaged(chart) })

	if *kubectl == "" || *kubeconfig == "" {
		report()
		return
	}
	kc := []string{"--kubeconfig", *kubeconfig}
	for _, ns := range []string{"kreload", "team-a", "team-b"} {
		ns := ns
		check("namespace "+ns, func() error {
			y, err := run(nil, *kubectl, append(kc, "create", "namespace", ns, "--dry-run=client", "-o", "yaml")...)
			if err != nil {
				return err
			}
			_, err = run([]byte(y), *kubectl, append(kc, "apply", "--server-side", "-f", "-")...)
			return err
		})
	}
	for _, name := range sortedKeys(renders) {
		check("dry run: helm template "+name, func() error {
			out, err := run(nil, *helm, append([]string{"template", "kreload", chart, "-n", "kreload"}, renders[name]...)...)
			if err != nil {
				return err
			}
			return dryRun(kc, out)
		})
	}
	for _, dir := range []string{"manifests", "manifests/overlays/namespaced", "manifests/overlays/mutating-sources"} {
		check("dry run: kustomize "+dir, func() error {
			out, err := run(nil, *kubectl, append(kc, "kustomize", filepath.Join(*repo, dir))...)
			if err != nil {
				return err
			}
			if dir == "manifests" {
				d, err := parse(out)
				if err != nil {
					return err
				}
				if err := sameWebhooks(d, files); err != nil {
					return err
				}
			}
			return dryRun(kc, out)
		})
	}
	report()
}

func dryRun(kc []string, manifests string) error {
	_, err := run([]byte(manifests), *kubectl, append(kc, "apply", "--server-side", "--dry-run=server", "-f", "-")...)
	return err
}

// sameWebhooks: each rendered configuration equals its file apart from metadata.labels.
func sameWebhooks(docs []object, files map[string]object) error {
	for n, want := range files {
		got := find(docs, kind(want), n)
		if got == nil {
			return fmt.Errorf("no %s %s rendered", kind(want), n)
		}
		a, b := stripLabels(want), stripLabels(got)
		if !reflect.DeepEqual(a, b) {
			ja, _ := yaml.Marshal(a)
			jb, _ := yaml.Marshal(b)
			return fmt.Errorf("%s differs from webhook/:\n--- file\n%s--- rendered\n%s", n, ja, jb)
		}
	}
	return nil
}

func stripLabels(o object) object {
	raw, _ := yaml.Marshal(o)
	var c object
	_ = yaml.Unmarshal(raw, &c)
	if m, ok := c["metadata"].(object); ok {
		delete(m, "labels")
	}
	return c
}

func packaged(chart string) error {
	dir, err := os.MkdirTemp("", "chartcheck")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := run(nil, *helm, "package", chart, "-d", dir); err != nil {
		return err
	}
	tgz, err := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if err != nil || len(tgz) != 1 {
		return fmt.Errorf("expected one .tgz, found %v", tgz)
	}
	f, err := os.Open(tgz[0])
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		base := strings.TrimPrefix(h.Name, "kreload/files/webhook/")
		if base == h.Name || !strings.HasSuffix(base, ".yaml") {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("%s is not a regular file in the package", h.Name)
		}
		got, _ := io.ReadAll(tr)
		want, err := os.ReadFile(filepath.Join(*repo, "webhook", base))
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("%s differs from webhook/%s", h.Name, base)
		}
		found[base] = true
	}
	if !found["validating.yaml"] || !found["mutating.yaml"] {
		return fmt.Errorf("package holds only %v of webhook/", found)
	}
	return nil
}

func parse(stream string) ([]object, error) {
	var out []object
	for _, doc := range strings.Split("\n"+stream, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, err
		}
		if o != nil {
			out = append(out, o)
		}
	}
	return out, nil
}

func find(docs []object, k, n string) object {
	for _, o := range docs {
		if kind(o) == k && name(o) == n {
			return o
		}
	}
	return nil
}

func kind(o object) string { s, _ := o["kind"].(string); return s }
func name(o object) string { s, _ := get(o, "metadata", "name").(string); return s }

func get(o object, path ...string) any {
	var cur any = o
	for _, p := range path {
		m, ok := cur.(object)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func run(stdin []byte, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func check(what string, f func() error) {
	if err := f(); err != nil {
		failures++
		fmt.Printf("FAIL %s: %v\n", what, err)
		return
	}
	fmt.Printf("ok   %s\n", what)
}

func report() {
	if failures > 0 {
		fmt.Printf("%d check(s) failed\n", failures)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}

func fatal(err error) { fmt.Fprintln(os.Stderr, "chartcheck:", err); os.Exit(2) }

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
