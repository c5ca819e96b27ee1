package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// GitHubAPIEnv names the environment variable that replaces the GitHub API
// base URL, for tests and for mirrors of the releases API.
const GitHubAPIEnv = "FLEDGE_GITHUB_API"

const defaultGitHubAPI = "https://api.github.com"

// errNotFound marks a release the API does not know.
var errNotFound = errors.New("not found")

type release struct {
	TagName string  `json:"tag_name"`
	Assets  []asset `json:"assets"`
}

type asset struct {
	Name   string `json:"name"`
	URL    string `json:"browser_download_url"`
	Digest string `json:"digest"`
}

// releaseURL is the API endpoint for a release of repo: "latest" (or
// empty) asks for the newest published release, anything else is a tag.
func releaseURL(repo, version string) string {
	base := strings.TrimRight(os.Getenv(GitHubAPIEnv), "/")
	if base == "" {
		base = defaultGitHubAPI
	}
	if version == "" || version == "latest" {
		return base + "/repos/" + repo + "/releases/latest"
	}
	return base + "/repos/" + repo + "/releases/tags/" + url.PathEscape(version)
}

// getRelease asks the releases API for one release.
func (c *Cache) getRelease(ctx context.Context, api string) (*release, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	if tok := os.Getenv("GITHUB_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", api, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errNotFound
	case rateLimited(resp):
		return nil, fmt.Errorf("the GitHub API rate limit is reached (%s from %s)%s; set GITHUB_TOKEN, wait, or use agent.source_strategy = \"local\"", resp.Status, api, resetHint(resp))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s answered %s", api, resp.Status)
	}
	var rel release
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&rel); err != nil {
		return nil, fmt.Errorf("%s: the answer is not a release: %w", api, err)
	}
	return &rel, nil
}

// rateLimited recognises both of GitHub's limits: the primary one empties
// X-RateLimit-Remaining, the secondary one sends Retry-After.
func rateLimited(resp *http.Response) bool {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return false
	}
	return resp.StatusCode == http.StatusTooManyRequests ||
		resp.Header.Get("X-RateLimit-Remaining") == "0" ||
		resp.Header.Get("Retry-After") != ""
}

func resetHint(resp *http.Response) string {
	if s := resp.Header.Get("Retry-After"); s != "" {
		return "; retry after " + s + " s"
	}
	var unix int64
	if _, err := fmt.Sscan(resp.Header.Get("X-RateLimit-Reset"), &unix); err == nil && unix > 0 {
		return "; it resets at " + time.Unix(unix, 0).UTC().Format("15:04 UTC")
	}
	return ""
}

// find returns the asset called name, or says which assets there are.
func (r *release) find(name string) (*asset, error) {
	var names []string
	for i := range r.Assets {
		if r.Assets[i].Name == name {
			return &r.Assets[i], nil
		}
		names = append(names, r.Assets[i].Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("release %s has no assets; expected one named %q", r.TagName, name)
	}
	return nil, fmt.Errorf("release %s has no asset named %q; it has: %s", r.TagName, name, strings.Join(names, ", "))
}

// sha256 returns the hex of the asset's "sha256:<hex>" digest, or "" when
// GitHub gave none (older releases) or used another algorithm.
func (a *asset) sha256() (string, error) {
	algo, h, ok := strings.Cut(a.Digest, ":")
	if !ok || !strings.EqualFold(algo, "sha256") {
		return "", nil
	}
	h, err := normalizeHex(h)
	if err != nil {
		return "", fmt.Errorf("asset %s has a malformed digest: %w", a.Name, err)
	}
	return h, nil
}
