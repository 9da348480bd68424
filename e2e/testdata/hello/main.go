// Command hello is the workload of octo's e2e test: an HTTP server that
// answers with its pod name, and two client modes used through `kubectl exec`.
//
//	hello serve            serve :8080
//	hello get URL          GET URL, print the body, exit non-zero unless 200
//	hello do METHOD URL BODY [NAME:VALUE...]
//	                       send one request with those headers and print
//	                       its status code (the security e2e's attacker)
//	hello namespaces       list namespaces through the kubernetes Service with
//	                       the pod's service account token
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hello serve | get URL | namespaces | do METHOD URL BODY [HEADER...] | write PATH TEXT | cat PATH")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve()
	case "get":
		err = get(os.Args[2])
	case "namespaces":
		err = namespaces()
	case "do":
		err = do(os.Args[2], os.Args[3], os.Args[4], os.Args[5:])
	case "write": // write PATH TEXT
		err = os.WriteFile(os.Args[2], []byte(os.Args[3]), 0o644)
	case "cat": // cat PATH
		var b []byte
		if b, err = os.ReadFile(os.Args[2]); err == nil {
			fmt.Print(string(b))
		}
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func serve() error {
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	return http.ListenAndServe(":8080", nil)
}

func get(url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(string(b))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func do(method, url, body string, headers []string) error {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range headers {
		if name, value, ok := strings.Cut(h, ":"); ok { // other words (flags octo appends) are not headers
			req.Header.Set(name, value)
		}
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	fmt.Println(resp.StatusCode)
	return nil
}

func namespaces() error {
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
	token, err := os.ReadFile(sa + "token")
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(sa + "ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")) + "/api/v1/namespaces"
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return err
	}
	for _, ns := range list.Items {
		fmt.Println(ns.Metadata.Name)
	}
	return nil
}
