package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultUserAgent is the User-Agent header a Client sends unless
// WithUserAgent says otherwise.
const DefaultUserAgent = "gitstate-go-client/1"

// Client talks to one gitstate server. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[/path], no trailing slash
	token     string
	hc        *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithToken makes the client send "Authorization: Bearer <token>" with every
// request. An empty token sends no header.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient makes the client send its requests through hc (default
// http.DefaultClient). Timeouts, proxies and TLS are configured there.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header (default DefaultUserAgent).
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the server at baseURL ("http://127.0.0.1:7070",
// or with a path prefix when the server is behind a proxy:
// "https://example.com/gitstate"). The URL must be absolute, http or https,
// without a query or fragment.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("gitstate client: parse server URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("gitstate client: server URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("gitstate client: server URL %q has no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("gitstate client: server URL %q must not have a query or fragment", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{base: u.String(), hc: http.DefaultClient, userAgent: DefaultUserAgent}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	return c, nil
}

// BaseURL returns the server URL the client was made with, without a
// trailing slash.
func (c *Client) BaseURL() string { return c.base }

// request is one API call: method, escaped path, query, body, headers.
type request struct {
	method string
	path   string // already escaped, starting with "/"
	query  url.Values
	header http.Header
	body   []byte
	// json marks the body as JSON.
	json bool
}

// newRequest builds the *http.Request of r.
func (c *Client) newRequest(ctx context.Context, r *request) (*http.Request, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("gitstate client: %s %s: %w", r.method, r.path, err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.json {
		req.Header.Set("Content-Type", "application/json")
	} else if r.body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// send performs r and returns the response. The caller closes its body.
func (c *Client) send(ctx context.Context, r *request) (*http.Response, error) {
	req, err := c.newRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	return c.hc.Do(req)
}

// do performs r and decodes a 2xx JSON response into out (when out is not
// nil). Any other status becomes a *gitstate.Error.
func (c *Client) do(ctx context.Context, r *request, out any) error {
	if r.header == nil {
		r.header = http.Header{}
	}
	r.header.Set("Accept", "application/json")
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorOf(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("gitstate client: %s %s: decode response: %w", r.method, r.path, err)
	}
	return nil
}

// doJSON sends in as a JSON body and decodes the response into out.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("gitstate client: %s %s: encode request: %w", method, path, err)
	}
	return c.do(ctx, &request{method: method, path: path, body: b, json: true}, out)
}

// closeBody drains a little of what is left of a body (so that the
// connection can be reused) and closes it.
func closeBody(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// repoPath returns the escaped path of a repo's route: /v1/repos/<repo><rest>.
func repoPath(repo, rest string) string {
	return "/v1/repos/" + url.PathEscape(repo) + rest
}

// escapeKey escapes each segment of a key for a URL path, keeping the
// slashes between them.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
