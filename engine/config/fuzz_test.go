package config

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// positioned is what every line of a configuration error starts with: the
// file and a line (and column, when known).
var positioned = regexp.MustCompile(`^config: f\.yaml(:\d+:\d+: |: (line \d+|the file is empty|.*line \d+))|^  line \d+: `)

// FuzzParse feeds arbitrary configuration files to Parse, with every
// ${VAR} set to a random secret. Parse must not panic, each error line
// must carry the file and a position, and no error may hold a secret.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("upstream: {base_url: sim}\naccounts: [{name: shop}]\nrules: ./rules\n"))
	f.Add([]byte("upstream: {base_url: '${U}'}\naccounts: [{name: '${N}', device_type: '${D}'}]\ntimezone: ${TZ}\nadmin: {listen: '${L}'}\nlog: {level: ${V}, format: ${F}}\nsync: {idle_interval: ${I}}\nsend: {burst: ${B}}\nplugins: {dev: ${P}}\n"))
	f.Add([]byte("sessions:\n  - {name: s, kind: ${K}, base_url: sim, app_key: k, app_secret: ${S}}\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	if examples, _ := filepath.Glob("../../examples/*/finderbot.yaml"); len(examples) > 0 {
		for _, p := range examples {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var secrets []string
		lookup := func(name string) (string, bool) {
			if name == "UNSET" {
				return "", false
			}
			s := fmt.Sprintf("S%016x", rand.Uint64())
			secrets = append(secrets, s)
			return s, true
		}
		cfg, err := Parse("f.yaml", data, lookup)
		if err == nil {
			if cfg.Path != "f.yaml" || len(cfg.Accounts) == 0 {
				t.Fatalf("accepted without accounts: %+v", cfg)
			}
			return
		}
		msg := err.Error()
		for _, s := range secrets {
			if strings.Contains(msg, s) {
				t.Fatalf("error shows a secret from the environment:\n%s", msg)
			}
		}
		for _, line := range strings.Split(msg, "\n") {
			if !positioned.MatchString(line) {
				t.Fatalf("error line without a position: %q\nin\n%s", line, msg)
			}
		}
	})
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-secret"
	tests := map[string]struct {
		in   string
		want []string
	}{
		"types": {
			in:   "upstream: {base_url: sim}\naccounts: [{name: a}]\nsync: {idle_interval: '${X}'}\nsend: {burst: '${X}'}\nplugins: {dev: '${X}'}\n",
			want: []string{`f.yaml:3:23: sync.idle_interval: "${X}" (with environment variables) is not a duration`, `send.burst: "${X}" (with environment variables) is not a whole number`},
		},
		"values": {
			in: "upstream: {base_url: '${X}', account: a, password: p}\naccounts: [{name: '${X}', device_type: '${X}'}]\n" +
				"timezone: ${X}\nadmin: {listen: '${X}'}\nlog: {level: '${X}', format: '${X}'}\n" +
				"sessions: [{name: '${X}', kind: '${X}', base_url: sim}]\n",
			want: []string{`f.yaml:1:12: upstream.base_url: "${X}" (with environment variables) is not an http(s) URL`, `timezone: "${X}" (with environment variables) is not a known time zone`, `sessions[0].name: "${X}" (with environment variables) is used twice`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("f.yaml", []byte(tc.in), env(map[string]string{"X": secret}))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("secret in error:\n%v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}
