package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"
)

// apiClient talks to a master's HTTPS API with the credentials of a kubeconfig.
type apiClient struct {
	server string
	token  string
	http   *http.Client
}

type kubeconfigFile struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server string `json:"server"`
			CAData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			Token string `json:"token"`
		} `json:"user"`
	} `json:"users"`
}

// defaultKubeconfig is $KUBECONFIG, else ./skiff-dev/kubeconfig if it exists (what
// `make run` writes), else ~/.kube/config.
func defaultKubeconfig() string {
	if p := os.Getenv("KUBECONFIG"); p != "" {
		return p
	}
	if _, err := os.Stat("skiff-dev/kubeconfig"); err == nil {
		return "skiff-dev/kubeconfig"
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".kube", "config")
}

func loadClient(path string) (*apiClient, error) {
	server, token, pool, err := readKubeconfig(path)
	if err != nil {
		return nil, err
	}
	return &apiClient{
		server: server,
		token:  token,
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}},
	}, nil
}

// readKubeconfig reads what the CLI needs from the kubeconfig at path: the first cluster's
// server (as written) and CA, and the first user's token.
func readKubeconfig(path string) (server, token string, pool *x509.CertPool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	var kc kubeconfigFile
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return "", "", nil, fmt.Errorf("parsing kubeconfig %s: %w", path, err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return "", "", nil, fmt.Errorf("kubeconfig %s has no cluster or no user", path)
	}
	ca, err := base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CAData)
	if err != nil {
		return "", "", nil, fmt.Errorf("kubeconfig CA: %w", err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return "", "", nil, errors.New("kubeconfig CA does not parse")
	}
	return kc.Clusters[0].Cluster.Server, kc.Users[0].User.Token, pool, nil
}

// getJSON GETs path from server (empty: the kubeconfig's) into out.
func (c *apiClient) getJSON(server, path string, out any) error {
	if server == "" {
		server = c.server
	}
	req, err := http.NewRequest(http.MethodGet, server+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s%s: %s", server, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
