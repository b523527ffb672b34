package sim

import "testing"

func TestKeyBuff(t *testing.T) {
	t.Parallel()
	if got := encodeKeyBuff(1242); got != SeedKeyBuff {
		t.Fatalf("encodeKeyBuff(1242) = %q, want the seed's %q", got, SeedKeyBuff)
	}
	for _, seq := range []int64{0, 1, 127, 128, 1242, 1 << 40} {
		got, err := decodeKeyBuff(encodeKeyBuff(seq))
		if err != nil || got != seq {
			t.Errorf("round trip of %d = %d, %v", seq, got, err)
		}
	}
	if seq, err := decodeKeyBuff(""); seq != 0 || err != nil {
		t.Errorf(`decodeKeyBuff("") = %d, %v`, seq, err)
	}
	for name, bad := range map[string]string{
		"not base64":     "not a keyBuff",
		"empty message":  "EAA=",         // only field 2
		"truncated":      "CgUIARDa",     // entry longer than the rest
		"unknown field":  "GgA=",         // field 3
		"bad varint":     "CgUIgICAgIA=", // varint never ends
		"entry no value": "CgIIAQ==",     // {1: 1} only: type 1 without a seq is seq 0
	} {
		seq, err := decodeKeyBuff(bad)
		if name == "entry no value" {
			if err != nil || seq != 0 {
				t.Errorf("%s: %d, %v", name, seq, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: %q decoded to %d", name, bad, seq)
		}
	}
}

func FuzzDecodeKeyBuff(f *testing.F) {
	f.Add(SeedKeyBuff)
	f.Add("")
	f.Add("CgUIgICAgIA=")
	f.Fuzz(func(t *testing.T, s string) {
		seq, err := decodeKeyBuff(s)
		if err == nil && seq < 0 {
			t.Fatalf("negative seq %d", seq)
		}
	})
}
