// Command gopeer is the Go peer of the benchmark suite (benchmarks/run.py): Gin with a
// middleware that verifies the bearer token of every request with go-oidc's IDTokenVerifier,
// the way a typical Go service does it. There is no cache of verified tokens: each request
// pays for a parse, the claim checks and an RS256 signature check.
//
// It is built from Debian's packages only, in GOPATH mode (benchmarks/go_peer.py), so the
// go-oidc it uses is the one Debian ships (v2, import path github.com/coreos/go-oidc).
//
//	gopeer -listen 127.0.0.1:PORT -issuer ISSUER -audience AUD \
//	       -jwks-url https://APISERVER/openid/v1/jwks -serviceaccount-dir DIR
//
// DIR holds a pod's projected files: "token" (the peer's own credentials for the JWKS request)
// and "ca.crt" (the API server's CA). Run it with GOMAXPROCS=1 to compare it with one
// single-threaded Python process.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-oidc"
	"github.com/gin-gonic/gin"
)

// jwksTimeout bounds the one outbound request (go-oidc has no timeout of its own).
const jwksTimeout = 10 * time.Second

const identityKey = "identity"

// identity is the body of /whoami, with the same fields as the Python service's.
type identity struct {
	Subject        string `json:"subject"`
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"service_account"`
	VerifiedBy     string `json:"verified_by"`
}

// kubernetesClaims are the claims a bound service-account token carries besides the standard
// ones (kubernetes/kubernetes pkg/serviceaccount/claims.go).
type kubernetesClaims struct {
	Subject    string `json:"sub"`
	Kubernetes struct {
		Namespace      string `json:"namespace"`
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

// bearerTransport sends the peer's own token with the JWKS request: the API server answers
// /openid/v1/jwks only to authenticated callers (system:service-account-issuer-discovery).
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (t bearerTransport) RoundTrip(request *http.Request) (*http.Response, error) {
	request = request.Clone(request.Context())
	request.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(request)
}

// apiServerClient trusts only the CA in dir/ca.crt and authenticates with dir/token.
func apiServerClient(dir string) (*http.Client, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("gopeer: no certificate in ca.crt")
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	return &http.Client{
		Timeout:   jwksTimeout,
		Transport: bearerTransport{token: strings.TrimSpace(string(token)), base: transport},
	}, nil
}

func deny(c *gin.Context, description string) {
	c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
	c.AbortWithStatusJSON(http.StatusUnauthorized,
		gin.H{"error": "invalid_token", "error_description": description})
}

// requireToken is the middleware: Verify checks iss, aud, exp, nbf, the algorithm and the
// signature; the subject must then name the namespace and account of the kubernetes.io claims.
func requireToken(verifier *oidc.IDTokenVerifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		scheme, token, found := strings.Cut(c.GetHeader("Authorization"), " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
			deny(c, "a bearer token is required")
			return
		}
		idToken, err := verifier.Verify(c.Request.Context(), token)
		if err != nil {
			deny(c, "the token is not valid")
			return
		}
		var claims kubernetesClaims
		if err := idToken.Claims(&claims); err != nil {
			deny(c, "the token is malformed")
			return
		}
		namespace, account := claims.Kubernetes.Namespace, claims.Kubernetes.ServiceAccount.Name
		if namespace == "" || account == "" ||
			claims.Subject != "system:serviceaccount:"+namespace+":"+account {
			deny(c, "the token is malformed")
			return
		}
		c.Set(identityKey, identity{claims.Subject, namespace, account, "go-oidc"})
		c.Next()
	}
}

func router(verifier *oidc.IDTokenVerifier) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New() // no access log: the Python service writes none per request either
	engine.Use(gin.Recovery())
	engine.GET("/readyz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	// The body of /whoami without authentication: the peer's own "no auth" baseline.
	engine.GET("/noauth", func(c *gin.Context) {
		c.JSON(http.StatusOK, identity{"system:serviceaccount:default:collector", "default",
			"collector", "none"})
	})
	engine.GET("/whoami", requireToken(verifier), func(c *gin.Context) {
		c.JSON(http.StatusOK, c.MustGet(identityKey))
	})
	return engine
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve plain HTTP on")
	issuer := flag.String("issuer", "", "the tokens' iss")
	audience := flag.String("audience", "", "the audience the tokens must carry")
	jwksURL := flag.String("jwks-url", "", "the API server's /openid/v1/jwks")
	saDir := flag.String("serviceaccount-dir", "", "folder with token and ca.crt")
	flag.Parse()
	if *issuer == "" || *audience == "" || *jwksURL == "" || *saDir == "" {
		fmt.Fprintln(os.Stderr, "gopeer: -issuer, -audience, -jwks-url and -serviceaccount-dir are required")
		os.Exit(2)
	}
	client, err := apiServerClient(*saDir)
	if err != nil {
		log.Fatalf("gopeer: %v", err)
	}
	// The key set uses the client carried by this context for every JWKS fetch.
	keys := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), client), *jwksURL)
	verifier := oidc.NewVerifier(*issuer, keys, &oidc.Config{
		ClientID: *audience,
		// The algorithms the Python verifier accepts (compass_auth/keyset.py).
		SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256, oidc.ES384, oidc.ES512},
	})
	server := &http.Server{Addr: *listen, Handler: router(verifier), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(server.ListenAndServe())
}
