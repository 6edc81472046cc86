// Command kubenode-testcluster runs a real kube-apiserver backed by an
// embedded etcd, both in this one process, for kubenode-agent's tests.
//
//	kubenode-testcluster --dir DIR [--agents N] [-- extra kube-apiserver flags]
//
// DIR/ready.json appears once /readyz answers ok. SIGTERM or SIGINT shuts the
// apiserver and then etcd down and exits 0. Running again with the same DIR
// reuses the etcd data, certificates, tokens and (when free) the ports.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const (
	etcdStartTimeout = 60 * time.Second
	readyTimeout     = 120 * time.Second
	// Backstop only: a clean apiserver+etcd shutdown takes a few seconds.
	shutdownTimeout = 60 * time.Second
)

type readyInfo struct {
	Server          string `json:"server"`
	CAFile          string `json:"caFile"`
	AdminToken      string `json:"adminToken"`
	AdminKubeconfig string `json:"adminKubeconfig"`
	// For a kube-controller-manager the harness starts on request (user system:kube-controller-manager).
	ControllerManagerKubeconfig string `json:"controllerManagerKubeconfig"`
	AgentsDir                   string `json:"agentsDir"`
	Agents                      int    `json:"agents"`
	Etcd                        string `json:"etcd"`
	Version                     string `json:"version"`
	PID                         int    `json:"pid"`
}

func main() {
	log.SetPrefix("kubenode-testcluster: ")
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	// A private FlagSet: klog and the apiserver own the global ones.
	fs := flag.NewFlagSet("kubenode-testcluster", flag.ContinueOnError)
	dirFlag := fs.String("dir", "", "state directory (created if missing; reused on restart)")
	agents := fs.Int("agents", 40, "number of agent identities kubenode:agent:node-<i> to create")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *dirFlag == "" || *agents < 0 {
		fmt.Fprintln(os.Stderr, "usage: kubenode-testcluster --dir DIR [--agents N] [-- kube-apiserver flags...]")
		os.Exit(2)
	}
	os.Exit(run(*dirFlag, *agents, fs.Args()))
}

func run(dirArg string, agents int, extraArgs []string) int {
	// Until the apiserver installs its own handler, a SIGTERM would kill us
	// with the default action; hold it here instead.
	early := make(chan os.Signal, 1)
	signal.Notify(early, syscall.SIGTERM, syscall.SIGINT)
	exitWithParent()

	dir, err := filepath.Abs(dirArg)
	if err != nil {
		log.Print(err)
		return 1
	}
	readyPath := filepath.Join(dir, "ready.json")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Print(err)
		return 1
	}
	// A stale ready.json from a previous run would let a waiter connect
	// before this run is serving.
	_ = os.Remove(readyPath)

	pki := newPKIPaths(dir)
	if err := ensurePKI(pki); err != nil {
		log.Printf("pki: %v", err)
		return 1
	}
	st, err := loadState(filepath.Join(dir, "state.json"), agents)
	if err != nil {
		log.Printf("state: %v", err)
		return 1
	}
	caPEM, err := os.ReadFile(pki.CACert)
	if err != nil {
		log.Print(err)
		return 1
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", st.APIServerPort)
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := writeTokenFile(tokenFile, st); err != nil {
		log.Print(err)
		return 1
	}
	if err := writeKubeconfigs(dir, server, caPEM, st); err != nil {
		log.Print(err)
		return 1
	}

	// NewAPIServerCommand installs the SIGTERM/SIGINT handler (it may only be
	// called once per process) and exposes it as the command's context, so
	// build it first and use that context to also abort etcd startup.
	cmd := app.NewAPIServerCommand()
	sigCtx := cmd.Context()
	signal.Stop(early)
	select {
	case sig := <-early:
		log.Printf("%v before start; exiting", sig)
		return 0
	default:
	}
	go func() {
		<-sigCtx.Done()
		time.Sleep(shutdownTimeout)
		log.Printf("shutdown did not finish within %s; exiting", shutdownTimeout)
		os.Exit(3)
	}()

	// kube-apiserver klog.Fatal()s when a post-start hook fails, and hooks do
	// fail when a stop is requested before startup has finished. That is still
	// the stop we were asked for, so finish it cleanly instead of exit(255).
	var startedEtcd atomic.Pointer[embed.Etcd]
	var fatalOnce sync.Once
	klog.OsExit = func(code int) {
		if sigCtx.Err() == nil {
			os.Exit(code)
		}
		fatalOnce.Do(func() {
			if e := startedEtcd.Load(); e != nil {
				e.Close()
			}
			_ = os.Remove(readyPath)
			log.Printf("stopped during startup (ignoring kube-apiserver exit %d)", code)
		})
		os.Exit(0)
	}

	etcd, err := startEtcd(sigCtx, dir, st)
	if err != nil {
		if sigCtx.Err() != nil {
			log.Print("interrupted while starting etcd")
			return 0
		}
		log.Printf("etcd: %v", err)
		return 1
	}
	startedEtcd.Store(etcd)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", st.EtcdClientPort)
	defer func() {
		etcd.Close()
		log.Print("etcd stopped")
	}()

	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(st.APIServerPort),
		"--cert-dir=" + filepath.Dir(pki.CACert),
		"--tls-cert-file=" + pki.ServingCert,
		"--tls-private-key-file=" + pki.ServingKey,
		"--client-ca-file=" + pki.CACert,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=Node,RBAC",
		// No token controller runs here, so the ServiceAccount admission
		// plugin would reject every pod lacking a token volume.
		"--disable-admission-plugins=ServiceAccount",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.SAPub,
		"--service-account-signing-key-file=" + pki.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		// The lease reconciler would publish 127.0.0.1 as the kubernetes
		// Service endpoint, which endpoint validation rejects as loopback.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		// Without it an open watch holds the HTTP server's graceful stop until
		// its request timeout (1 min) and shutdownTimeout ends the process
		// first (exit 3); with it the watches are ended when the stop begins.
		"--shutdown-watch-termination-grace-period=5s",
	}
	args = append(args, extraArgs...)
	cmd.SetArgs(args)

	apiDone := make(chan error, 1)
	go func() { apiDone <- cli.RunNoErrOutput(cmd) }()

	info := readyInfo{
		Server:                      server,
		CAFile:                      pki.CACert,
		AdminToken:                  st.AdminToken,
		AdminKubeconfig:             filepath.Join(dir, "admin.kubeconfig"),
		ControllerManagerKubeconfig: filepath.Join(dir, "controller-manager.kubeconfig"),
		AgentsDir:                   filepath.Join(dir, "agents"),
		Agents:                      agents,
		Etcd:                        etcdURL,
		Version:                     version.Get().GitVersion,
		PID:                         os.Getpid(),
	}
	readyCtx, cancelReady := context.WithTimeout(sigCtx, readyTimeout)
	defer cancelReady()
	readyDone := make(chan error, 1)
	go func() { readyDone <- waitReady(readyCtx, server, caPEM, st.AdminToken) }()

	for {
		select {
		case err := <-readyDone:
			readyDone = nil
			cancelReady()
			if err != nil {
				if sigCtx.Err() != nil {
					continue // shutting down; apiDone follows
				}
				log.Printf("apiserver not ready: %v", err)
				return 1
			}
			b, _ := json.MarshalIndent(info, "", "  ")
			if err := writeFileAtomic(readyPath, append(b, '\n'), 0o600); err != nil {
				log.Print(err)
				return 1
			}
			log.Printf("ready: %s (%s)", server, info.Version)
		case err := <-etcd.Err():
			log.Printf("etcd failed: %v", err)
			return 1
		case err := <-apiDone:
			cancelReady()
			_ = os.Remove(readyPath)
			if sigCtx.Err() != nil {
				log.Print("apiserver stopped")
				return 0
			}
			log.Printf("apiserver exited unexpectedly: %v", err)
			return 1
		}
	}
}

func startEtcd(ctx context.Context, dir string, st *state) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "testcluster"
	cfg.Dir = filepath.Join(dir, "etcd")
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", st.EtcdClientPort)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", st.EtcdPeerPort)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.InitialClusterToken = "kubenode-testcluster"
	// etcd is chatty at info; its own file keeps the apiserver log readable.
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	// NewConfig leaves this 0 (only etcd's flag parsing sets the default),
	// which logs every single request as slow.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	// Survives process exit (the page cache is flushed by the kernel), only
	// not a machine crash, which a throwaway test cluster does not care about;
	// fsync on every write would dominate test time on slow disks.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(etcdStartTimeout):
		e.Close()
		return nil, fmt.Errorf("not ready after %s (see %s)", etcdStartTimeout, cfg.LogOutputs[0])
	}
}

// waitReady polls /readyz as the admin so every post-start hook (RBAC
// bootstrap roles among them) has finished before tests see the cluster.
func waitReady(ctx context.Context, server string, caPEM []byte, token string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("cannot parse CA")
	}
	c := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer c.CloseIdleConnections()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last /readyz: %s", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
