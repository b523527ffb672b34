package config

import (
	"slices"
	"testing"
)

func TestSecretsFindsEverySecretField(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Upstream.Password = "pw-1"
	c.Admin.Token = "adm-2"
	c.Sessions = []Session{{ValidateNo: "123456"}, {AppSecret: "as-3"}, {}}
	got := c.Secrets()
	slices.Sort(got)
	if want := []string{"123456", "adm-2", "as-3", "pw-1"}; !slices.Equal(got, want) {
		t.Fatalf("Secrets() = %q, want %q", got, want)
	}
}
