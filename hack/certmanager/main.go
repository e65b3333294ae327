// cert-manager-lite runs the parts of cert-manager that kreload's tests need, wired from
// cert-manager's published pkg/ packages (its cmd/ modules are not published):
//
//	cert-manager-lite controller --kubeconfig FILE [--cluster-resource-namespace NS] [--namespace NS]
//	cert-manager-lite cainjector --kubeconfig FILE [--namespace NS]
//	cert-manager-lite check-crds DIR   (used by the build: every *.yaml in DIR is one CRD)
//
// controller runs the Issuer/ClusterIssuer controllers, the Certificate controllers and the
// CertificateRequest approver plus the SelfSigned and CA signers. cainjector fills caBundle
// of webhook configurations annotated cert-manager.io/inject-ca-from. No leader election, no
// metrics or health servers: one copy per test control plane. Built by hack/certmanager.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	// Each of these registers its controller (or issuer implementation) in init().
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// The controllers run by default: everything a selfSigned → CA → leaf chain needs.
var defaultControllers = []string{
	"issuers",
	"clusterissuers",
	"certificaterequests-approver",
	"certificaterequests-issuer-selfsigned",
	"certificaterequests-issuer-ca",
	"certificates-trigger",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-issuing",
	"certificates-readiness",
	"certificates-revision-manager",
}

func usage(problem string) {
	fmt.Fprintf(os.Stderr, "%s\nusage: %s controller|cainjector --kubeconfig FILE [flags]  (-h after the subcommand lists the flags)\n",
		problem, os.Args[0])
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage("no subcommand")
	}
	sub := os.Args[1]
	if sub == "check-crds" && len(os.Args) == 3 {
		if err := checkCRDs(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	// A fresh flag set: controller-runtime already puts its own --kubeconfig on flag.CommandLine.
	fs := flag.NewFlagSet(os.Args[0]+" "+sub, flag.ExitOnError)
	var klogFlags flag.FlagSet
	klog.InitFlags(&klogFlags)
	fs.Var(klogFlags.Lookup("v").Value, "v", "log verbosity: cert-manager logs progress at 2, debugging at 4")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster (required)")
	namespace := fs.String("namespace", "", "watch only this namespace (the controller then skips ClusterIssuers); all namespaces when empty")
	fs.Func("feature-gates", "cert-manager feature gates, e.g. CAInjectorMerging=false",
		utilfeature.DefaultMutableFeatureGate.Set)

	var run func(ctx context.Context) error
	switch sub {
	case "controller":
		crns := fs.String("cluster-resource-namespace", "kube-system", "namespace holding the Secrets that ClusterIssuers refer to")
		list := fs.String("controllers", strings.Join(defaultControllers, ","), "comma-separated controllers to run")
		workers := fs.Int("workers", 5, "workers per controller")
		minBackoff := fs.Duration("min-backoff", time.Hour, "first delay before retrying a failed issuance (cert-manager's default is 1h)")
		fs.Parse(os.Args[2:])
		run = func(ctx context.Context) error {
			return runController(ctx, *kubeconfig, *namespace, *crns, strings.Split(*list, ","), *workers, *minBackoff)
		}
	case "cainjector":
		kinds := fs.String("injectables", "validatingwebhookconfiguration,mutatingwebhookconfiguration",
			"comma-separated kinds to inject into (also: customresourcedefinition, apiservice)")
		fs.Parse(os.Args[2:])
		run = func(ctx context.Context) error {
			return runCAInjector(ctx, *kubeconfig, *namespace, strings.Split(*kinds, ","))
		}
	default:
		usage("unknown subcommand " + sub)
	}
	if *kubeconfig == "" {
		usage("--kubeconfig is required")
	}
	if fs.NArg() > 0 {
		usage("unexpected arguments " + strings.Join(fs.Args(), " "))
	}

	logf.InitLogs()
	defer logf.FlushLogs()
	ctrl.SetLogger(logf.Log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, sub)
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		logf.Log.Error(err, sub+" failed")
		logf.FlushLogs()
		os.Exit(1)
	}
}

func runController(ctx context.Context, kubeconfig, namespace, crns string, names []string, workers int, minBackoff time.Duration) error {
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		Namespace:          namespace,
		IssuerOptions:      controller.IssuerOptions{ClusterResourceNamespace: crns},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/"},
			CertificateRequestMinimumBackoffDuration: minBackoff,
			CertificateRequestMaximumBackoffDuration: 32 * minBackoff,
		},
	})
	if err != nil {
		return err
	}
	// The informer factories are shared by every Context the factory builds.
	base, err := factory.Build()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, name := range names {
		if name == "clusterissuers" && namespace != "" {
			continue // cluster-scoped; cert-manager disables it in namespaced mode too
		}
		newController, ok := controller.Known()[name]
		if !ok {
			return fmt.Errorf("unknown controller %q", name)
		}
		c, err := newController(factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", name, err)
				cancel()
			}
		}()
	}
	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	klog.InfoS("cert-manager-lite controller running", "controllers", names, "namespace", namespace, "clusterResourceNamespace", crns)

	wg.Wait()
	klog.InfoS("cert-manager-lite controller stopping")
	base.SharedInformerFactory.Shutdown()
	base.KubeSharedInformerFactory.Shutdown()
	base.HTTP01ResourceMetadataInformersFactory.Shutdown()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

func runCAInjector(ctx context.Context, kubeconfig, namespace string, kinds []string) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	restConfig.UserAgent = "cert-manager-lite-cainjector"

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))

	opts := ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"}, // no metrics listener
		Cache:   cache.Options{ReaderFailOnMissingInformer: true},
		// The injectors read source Secrets directly instead of caching every Secret.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	}
	if namespace != "" {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	mgr, err := ctrl.NewManager(restConfig, opts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	// Watching Certificates fails if their CRD is missing; wait for it like cert-manager does.
	direct, err := client.New(restConfig, client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := direct.Get(ctx, types.NamespacedName{Name: "certificates.cert-manager.io"}, &apiext.CustomResourceDefinition{})
		if err != nil {
			klog.InfoS("waiting for the certificates.cert-manager.io CRD", "err", err)
		}
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("certificates.cert-manager.io CRD: %w", err)
	}

	enabled := map[string]bool{}
	for _, k := range kinds {
		switch k {
		case cainjector.MutatingWebhookConfigurationName, cainjector.ValidatingWebhookConfigurationName,
			cainjector.APIServiceName, cainjector.CustomResourceDefinitionName:
			enabled[k] = true
		default:
			return fmt.Errorf("unknown injectable kind %q", k)
		}
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		Namespace:                    namespace,
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor:        enabled,
	}); err != nil {
		return fmt.Errorf("registering injectors: %w", err)
	}
	klog.InfoS("cert-manager-lite cainjector running", "injectables", kinds, "namespace", namespace)
	return mgr.Start(ctx)
}

// checkCRDs fails unless every *.yaml in dir is exactly one CustomResourceDefinition in plain
// YAML (no templating, no unknown fields), so the build never caches something unappliable.
func checkCRDs(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRD files in %s", dir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		body := strings.TrimPrefix(strings.TrimSpace(string(data)), "---\n")
		if strings.Contains(body, "{{") || strings.Contains(body, "\n---") {
			return fmt.Errorf("%s: templated or more than one document", f)
		}
		var crd apiext.CustomResourceDefinition
		if err := yaml.UnmarshalStrict([]byte(body), &crd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if crd.Kind != "CustomResourceDefinition" || crd.Name == "" || len(crd.Spec.Versions) == 0 {
			return fmt.Errorf("%s: not a CustomResourceDefinition", f)
		}
		fmt.Println(crd.Name)
	}
	return nil
}
