// Command echo is the static Go test image: an HTTP server on :8080 that answers every
// request with a greeting, packed as an OCI image by agent/testimage.Binary.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	name, _ := os.Hostname()
	fmt.Println("echo: serving on :8080")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from skiff (%s) %s\n", name, r.URL.Path)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
