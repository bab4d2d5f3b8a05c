package master

import (
	"encoding/base64"
	"fmt"
)

// Kubeconfig renders a kubeconfig that kubectl and client-go use as is: the cluster's CA,
// one server, and the admin bearer token.
func Kubeconfig(clusterName, server string, caPEM []byte, token string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[1]s-admin
  user:
    token: %[4]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s-admin
    namespace: default
current-context: %[1]s
`, clusterName, server, base64.StdEncoding.EncodeToString(caPEM), token))
}
