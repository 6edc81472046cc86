package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	adminUser   = "kubenode:admin"
	agentGroup  = "kubenode:agents"
	agentPrefix = "kubenode:agent:"
	// The user the bootstrap RBAC policy binds to system:kube-controller-manager, as kubeadm's
	// controller-manager.conf does; with --use-service-account-credentials each controller then
	// acts as its own kube-system service account.
	controllerManagerUser = "system:kube-controller-manager"
)

// state is persisted in DIR/state.json so a restart keeps the same tokens and,
// when still free, the same ports: kubeconfigs handed to tests stay valid.
type state struct {
	AdminToken  string   `json:"adminToken"`
	AgentTokens []string `json:"agentTokens"`
	// Absent from state.json files written before the controller manager existed.
	ControllerManagerToken string `json:"controllerManagerToken"`
	EtcdClientPort         int    `json:"etcdClientPort"`
	EtcdPeerPort           int    `json:"etcdPeerPort"`
	APIServerPort          int    `json:"apiServerPort"`
}

func loadState(path string, agents int) (*state, error) {
	s := &state{}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if s.AdminToken == "" {
		s.AdminToken = randToken()
	}
	if s.ControllerManagerToken == "" {
		s.ControllerManagerToken = randToken()
	}
	for len(s.AgentTokens) < agents {
		s.AgentTokens = append(s.AgentTokens, randToken())
	}
	s.AgentTokens = s.AgentTokens[:agents]

	used := map[int]bool{}
	for _, p := range []*int{&s.EtcdClientPort, &s.EtcdPeerPort, &s.APIServerPort} {
		if *p == 0 || used[*p] || !portFree(*p) {
			np, err := freePort(used)
			if err != nil {
				return nil, err
			}
			*p = np
		}
		used[*p] = true
	}

	b, err = json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return s, writeFileAtomic(path, b, 0o600)
}

func randToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freePort(exclude map[int]bool) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !exclude[p] {
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port found")
}

func agentName(i int) string { return fmt.Sprintf("node-%d", i) }

// writeTokenFile renders the --token-auth-file CSV: token,user,uid,"groups".
func writeTokenFile(path string, s *state) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s,%s,%s,\"system:masters\"\n", s.AdminToken, adminUser, adminUser)
	fmt.Fprintf(&b, "%s,%s,%s\n", s.ControllerManagerToken, controllerManagerUser, controllerManagerUser)
	for i, tok := range s.AgentTokens {
		u := agentPrefix + agentName(i)
		fmt.Fprintf(&b, "%s,%s,%s,\"%s\"\n", tok, u, u, agentGroup)
	}
	return writeFileAtomic(path, []byte(b.String()), 0o600)
}

// kubeconfig embeds the CA rather than pointing at pki/ so a copied file keeps
// working; JSON is valid YAML and avoids a YAML dependency.
func kubeconfig(server string, caPEM []byte, user, token string) []byte {
	cfg := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{
			"name": "testcluster",
			"cluster": map[string]any{
				"server":                     server,
				"certificate-authority-data": base64.StdEncoding.EncodeToString(caPEM),
			},
		}},
		"users": []any{map[string]any{
			"name": user,
			"user": map[string]any{"token": token},
		}},
		"contexts": []any{map[string]any{
			"name":    "testcluster",
			"context": map[string]any{"cluster": "testcluster", "user": user},
		}},
		"current-context": "testcluster",
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n')
}

func writeKubeconfigs(dir, server string, caPEM []byte, s *state) error {
	if err := writeFileAtomic(filepath.Join(dir, "admin.kubeconfig"),
		kubeconfig(server, caPEM, adminUser, s.AdminToken), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "controller-manager.kubeconfig"),
		kubeconfig(server, caPEM, controllerManagerUser, s.ControllerManagerToken), 0o600); err != nil {
		return err
	}
	agentsDir := filepath.Join(dir, "agents")
	if err := os.MkdirAll(agentsDir, 0o700); err != nil {
		return err
	}
	for i, tok := range s.AgentTokens {
		name := agentName(i)
		if err := writeFileAtomic(filepath.Join(agentsDir, name+".kubeconfig"),
			kubeconfig(server, caPEM, agentPrefix+name, tok), 0o600); err != nil {
			return err
		}
	}
	return nil
}
