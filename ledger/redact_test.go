package ledger

import (
	"strings"
	"testing"
)

// TestRedactURL: no form of connection string shows its password in a message, whether
// the driver can parse it or not.
func TestRedactURL(t *testing.T) {
	for _, u := range []string{
		"postgres://fraudpipe:s3cret-pw@db:5432/ledger",
		"postgres://fraudpipe:s3cret-pw@db:5432/ledger?sslmode=bogus",
		"host=db user=fraudpipe password=s3cret-pw sslmode=bogus",
		"postgres://fraudpipe:s3cret-pw@db:notaport/ledger",
	} {
		if got := redactURL(u); strings.Contains(got, "s3cret-pw") {
			t.Errorf("%q redacted to %q", u, got)
		}
	}
	if got := redactURL("postgres://fraudpipe@db/ledger"); got != "postgres://fraudpipe@db/ledger" {
		t.Errorf("a URL without a password changed: %q", got)
	}
}
