package sim

import (
	"encoding/base64"
	"errors"
)

// The keyBuff cursor is base64 of a small protobuf message, as the real
// upstream sends it. The seed page's keyBuff
// "CgUIARDaCQoECAIQAAoECAMQAA…EAA" decodes to nine {1: key type, 2: value}
// entries (field 1) and a field 2 of 0; key type 1 carries the sequence
// number of the last message delivered (1242 on the seed page). The
// simulator writes cursors in exactly that layout, so the cursor it issues
// after the seed page is the seed's keyBuff, byte for byte.

// encodeKeyBuff returns the cursor for "everything up to seq delivered".
func encodeKeyBuff(seq int64) string {
	b := make([]byte, 0, 64)
	for typ := uint64(1); typ <= 9; typ++ {
		var val uint64
		if typ == 1 {
			val = uint64(seq)
		}
		inner := appendVarint([]byte{0x08}, typ)
		inner = appendVarint(append(inner, 0x10), val)
		b = append(b, 0x0a)
		b = appendVarint(b, uint64(len(inner)))
		b = append(b, inner...)
	}
	b = append(b, 0x10, 0x00)
	return base64.StdEncoding.EncodeToString(b)
}

var errKeyBuff = errors.New("not a keyBuff")

// decodeKeyBuff returns the sequence number a cursor carries; "" is 0.
func decodeKeyBuff(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return 0, errKeyBuff
	}
	var seq int64
	found := false
	for len(b) > 0 {
		tag, n := varint(b)
		if n <= 0 {
			return 0, errKeyBuff
		}
		b = b[n:]
		switch tag {
		case 0x0a: // field 1, length-delimited: one {type, value} entry
			l, n := varint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return 0, errKeyBuff
			}
			entry := b[n : n+int(l)]
			b = b[n+int(l):]
			typ, val, err := decodeEntry(entry)
			if err != nil {
				return 0, err
			}
			if typ == 1 {
				seq, found = int64(val), true
			}
		case 0x10: // field 2, varint
			_, n := varint(b)
			if n <= 0 {
				return 0, errKeyBuff
			}
			b = b[n:]
		default:
			return 0, errKeyBuff
		}
	}
	if !found || seq < 0 {
		return 0, errKeyBuff
	}
	return seq, nil
}

func decodeEntry(b []byte) (typ, val uint64, err error) {
	for len(b) > 0 {
		tag, n := varint(b)
		if n <= 0 {
			return 0, 0, errKeyBuff
		}
		b = b[n:]
		v, n := varint(b)
		if n <= 0 {
			return 0, 0, errKeyBuff
		}
		b = b[n:]
		switch tag {
		case 0x08:
			typ = v
		case 0x10:
			val = v
		default:
			return 0, 0, errKeyBuff
		}
	}
	return typ, val, nil
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// varint reads a protobuf varint; n <= 0 means malformed.
func varint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}
