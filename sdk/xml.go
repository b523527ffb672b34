package sdk

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds on the XML finderbot parses out of message content. Content comes
// from strangers, so every dimension is capped; nothing in it is expanded
// (there is no DTD support, so no entity can grow the input).
const (
	MaxXMLSize   = 256 << 10 // bytes of XML parsed per message
	MaxXMLDepth  = 32        // nesting depth of elements
	MaxXMLFields = 256       // fields kept from one system notice
)

// ErrXMLTooLarge is returned for message XML past MaxXMLSize.
var ErrXMLTooLarge = fmt.Errorf("xml: content larger than %d bytes", MaxXMLSize)

// ParseSysMsg parses the Content of a system notice,
// <sysmsg type="T"><T><field>value</field>...</T></sysmsg>, into a SysMsg.
// Leaf elements below the element named after T (or below <sysmsg> when there
// is no such element) become Fields, keyed by their path with "." between
// levels.
func ParseSysMsg(content string) (*SysMsg, error) {
	x, err := newXMLScanner(content)
	if err != nil {
		return nil, err
	}
	root, err := x.root()
	if err != nil {
		return nil, err
	}
	if root.name != "sysmsg" {
		return nil, fmt.Errorf("xml: root element is <%s>, want <sysmsg>", root.name)
	}
	s := &SysMsg{}
	if err := eachAttr(root.attrs, func(k, v string) {
		if k == "type" {
			s.Type = v
		}
	}); err != nil {
		return nil, err
	}
	if root.selfClose {
		return s, x.rest()
	}
	s.Fields = make(map[string]string)
	// path holds the element names below <sysmsg>; leaf tracks whether the
	// innermost open element has had a child yet.
	var path []string
	var text string // the innermost leaf's text so far; usually one token
	leaf := false
	for {
		t, err := x.next()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tokStart:
			path = append(path, t.name)
			leaf = !t.selfClose
			text = ""
			if t.selfClose {
				if err := s.addField(path, ""); err != nil {
					return nil, err
				}
				path = path[:len(path)-1]
			}
		case tokText:
			if leaf {
				text += t.text
			}
		case tokEnd:
			if len(path) == 0 { // </sysmsg>
				return s, x.rest()
			}
			if leaf {
				if err := s.addField(path, text); err != nil {
					return nil, err
				}
			}
			leaf = false
			path = path[:len(path)-1]
		}
	}
}

func (s *SysMsg) addField(path []string, value string) error {
	if len(path) > 0 && path[0] == s.Type {
		path = path[1:]
	}
	if len(path) == 0 {
		return nil
	}
	if len(s.Fields) >= MaxXMLFields {
		return fmt.Errorf("xml: sysmsg has more than %d fields", MaxXMLFields)
	}
	key := path[0]
	if len(path) > 1 {
		key = strings.Join(path, ".")
	}
	s.Fields[key] = value
	return nil
}

// ParseImage parses the Content of an image message,
// <msg><img aeskey="…" cdnthumburl="…" length="…" …/></msg>, into an Image.
func ParseImage(content string) (*Image, error) {
	x, err := newXMLScanner(content)
	if err != nil {
		return nil, err
	}
	t, err := x.root()
	for err == nil {
		if t.kind == tokStart && t.name == "img" {
			return imageFromAttrs(t.attrs)
		}
		if x.depth() == 0 {
			return nil, errors.New("xml: no <img> element")
		}
		t, err = x.next()
	}
	return nil, err
}

func imageFromAttrs(attrs string) (*Image, error) {
	img := &Image{Attrs: make(map[string]string)}
	var perr error
	err := eachAttr(attrs, func(k, v string) {
		if len(img.Attrs) >= MaxXMLFields {
			perr = fmt.Errorf("xml: <img> has more than %d attributes", MaxXMLFields)
			return
		}
		img.Attrs[k] = v
		switch k {
		case "aeskey":
			img.AESKey = v
		case "md5":
			img.MD5 = v
		case "cdnthumburl":
			img.ThumbURL = v
		case "cdnmidimgurl":
			img.MidURL = v
		case "cdnbigimgurl":
			img.BigURL = v
		case "length":
			img.Length, perr = attrInt(k, v, perr)
		case "hdlength":
			img.HDLength, perr = attrInt(k, v, perr)
		case "cdnthumbwidth":
			var n int64
			n, perr = attrInt(k, v, perr)
			img.ThumbWidth = int(n)
		case "cdnthumbheight":
			var n int64
			n, perr = attrInt(k, v, perr)
			img.ThumbHeight = int(n)
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	return img, nil
}

// attrInt parses a numeric attribute; an empty value is zero. It keeps the
// first error seen.
func attrInt(name, v string, prev error) (int64, error) {
	if v == "" {
		return 0, prev
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && prev == nil {
		return 0, fmt.Errorf("xml: attribute %s=%q is not a number", name, v)
	}
	return n, prev
}

type tokKind uint8

const (
	tokStart tokKind = iota + 1
	tokEnd
	tokText
)

type xmlToken struct {
	kind      tokKind
	name      string
	attrs     string // the raw attribute text of a start tag
	selfClose bool
	text      string
}

// xmlScanner is a small, strict, allocation-light XML tokenizer for the
// shapes WeChat puts in message content. It supports elements, attributes,
// text, the five predefined entities, character references, comments, CDATA
// and processing instructions; it refuses DTDs, so entity expansion cannot
// happen.
type xmlScanner struct {
	s     string
	i     int
	stack []string
}

func newXMLScanner(s string) (*xmlScanner, error) {
	if len(s) > MaxXMLSize {
		return nil, ErrXMLTooLarge
	}
	if !utf8.ValidString(s) {
		return nil, errors.New("xml: content is not valid UTF-8")
	}
	return &xmlScanner{s: s}, nil
}

func (x *xmlScanner) depth() int { return len(x.stack) }

// root skips the prolog and returns the root element's start tag.
func (x *xmlScanner) root() (xmlToken, error) {
	for {
		t, err := x.next()
		if err != nil {
			return t, err
		}
		switch t.kind {
		case tokStart:
			return t, nil
		case tokText:
			if strings.TrimSpace(t.text) != "" {
				return t, errors.New("xml: text before the root element")
			}
		}
	}
}

// rest checks that nothing but space, comments and processing instructions
// follows the root element.
func (x *xmlScanner) rest() error {
	for x.i < len(x.s) {
		t, err := x.next()
		if err != nil {
			return err
		}
		if t.kind != tokText || strings.TrimSpace(t.text) != "" {
			return errors.New("xml: content after the root element")
		}
	}
	return nil
}

func (x *xmlScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("xml: offset %d: %s", x.i, fmt.Sprintf(format, args...))
}

func (x *xmlScanner) next() (xmlToken, error) {
	for {
		if x.i >= len(x.s) {
			if len(x.stack) > 0 {
				return xmlToken{}, x.errorf("unexpected end of content inside <%s>", x.stack[len(x.stack)-1])
			}
			return xmlToken{}, x.errorf("unexpected end of content")
		}
		rest := x.s[x.i:]
		if rest[0] != '<' {
			end := strings.IndexByte(rest, '<')
			if end < 0 {
				end = len(rest)
			}
			raw := rest[:end]
			text, err := unescapeXML(raw)
			if err != nil {
				return xmlToken{}, x.errorf("%v", err)
			}
			x.i += end
			return xmlToken{kind: tokText, text: text}, nil
		}
		if len(rest) < 2 {
			return xmlToken{}, x.errorf("unterminated tag")
		}
		switch c := rest[1]; {
		case c != '?' && c != '!' && c != '/':
			return x.startTag(rest)
		case c == '?':
			end := strings.Index(rest, "?>")
			if end < 0 {
				return xmlToken{}, x.errorf("unterminated processing instruction")
			}
			x.i += end + 2
			continue
		case strings.HasPrefix(rest, "<!--"):
			end := strings.Index(rest[4:], "-->")
			if end < 0 {
				return xmlToken{}, x.errorf("unterminated comment")
			}
			x.i += 4 + end + 3
			continue
		case strings.HasPrefix(rest, "<![CDATA["):
			end := strings.Index(rest[9:], "]]>")
			if end < 0 {
				return xmlToken{}, x.errorf("unterminated CDATA section")
			}
			if len(x.stack) == 0 {
				return xmlToken{}, x.errorf("CDATA outside the root element")
			}
			text := rest[9 : 9+end]
			x.i += 9 + end + 3
			return xmlToken{kind: tokText, text: text}, nil
		case strings.HasPrefix(rest, "<!"):
			return xmlToken{}, x.errorf("declarations and DTDs are not supported")
		case c == '/':
			end := strings.IndexByte(rest, '>')
			if end < 0 {
				return xmlToken{}, x.errorf("unterminated end tag")
			}
			name := trimSpace(rest[2:end])
			if len(x.stack) == 0 {
				return xmlToken{}, x.errorf("end tag </%s> without a start tag", name)
			}
			if top := x.stack[len(x.stack)-1]; top != name {
				return xmlToken{}, x.errorf("end tag </%s> does not match <%s>", name, top)
			}
			x.stack = x.stack[:len(x.stack)-1]
			x.i += end + 1
			return xmlToken{kind: tokEnd, name: name}, nil
		}
		return x.startTag(rest)
	}
}

func (x *xmlScanner) startTag(rest string) (xmlToken, error) {
	// Find the closing '>' outside quoted attribute values.
	end := -1
	var quote byte
	for j := 1; j < len(rest); j++ {
		c := rest[j]
		if quote != 0 {
			if c == quote {
				quote = 0
			}
			continue
		}
		if c == '"' || c == '\'' {
			quote = c
		} else if c == '>' {
			end = j
			break
		} else if c == '<' {
			return xmlToken{}, x.errorf("'<' inside a tag")
		}
	}
	if end < 0 {
		return xmlToken{}, x.errorf("unterminated start tag")
	}
	body := rest[1:end]
	t := xmlToken{kind: tokStart}
	if strings.HasSuffix(body, "/") {
		t.selfClose = true
		body = body[:len(body)-1]
	}
	n := 0
	for n < len(body) && !isSpace(body[n]) {
		n++
	}
	t.name, t.attrs = body[:n], body[n:]
	if !validName(t.name) {
		return xmlToken{}, x.errorf("bad element name %q", t.name)
	}
	if !t.selfClose {
		if len(x.stack) >= MaxXMLDepth {
			return xmlToken{}, x.errorf("elements nested deeper than %d", MaxXMLDepth)
		}
		x.stack = append(x.stack, t.name)
	}
	x.i += end + 1
	return t, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':', c >= 0x80:
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// eachAttr calls fn for every name="value" pair in a start tag's attribute
// text, with the value unescaped.
func eachAttr(s string, fn func(name, value string)) error {
	for {
		s = trimSpace(s)
		if s == "" {
			return nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return fmt.Errorf("xml: malformed attribute %q", truncate(s, 32))
		}
		name := trimSpace(s[:eq])
		if !validName(name) {
			return fmt.Errorf("xml: bad attribute name %q", truncate(name, 32))
		}
		s = trimSpace(s[eq+1:])
		if s == "" || (s[0] != '"' && s[0] != '\'') {
			return fmt.Errorf("xml: attribute %s has an unquoted value", name)
		}
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return fmt.Errorf("xml: attribute %s has an unterminated value", name)
		}
		v, err := unescapeXML(s[1 : 1+end])
		if err != nil {
			return fmt.Errorf("xml: attribute %s: %w", name, err)
		}
		fn(name, v)
		s = s[1+end+1:]
	}
}

// unescapeXML resolves the predefined entities and character references.
// Any other entity is an error: without a DTD there is nothing to expand.
func unescapeXML(s string) (string, error) {
	amp := strings.IndexByte(s, '&')
	if amp < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for amp >= 0 {
		b.WriteString(s[:amp])
		s = s[amp:]
		semi := strings.IndexByte(s, ';')
		if semi < 0 || semi > 12 {
			return "", fmt.Errorf("unterminated entity %q", truncate(s, 12))
		}
		ent := s[1:semi]
		switch ent {
		case "lt":
			b.WriteByte('<')
		case "gt":
			b.WriteByte('>')
		case "amp":
			b.WriteByte('&')
		case "quot":
			b.WriteByte('"')
		case "apos":
			b.WriteByte('\'')
		default:
			r, ok := charRef(ent)
			if !ok {
				return "", fmt.Errorf("unknown entity &%s;", ent)
			}
			b.WriteRune(r)
		}
		s = s[semi+1:]
		amp = strings.IndexByte(s, '&')
	}
	b.WriteString(s)
	return b.String(), nil
}

func charRef(ent string) (rune, bool) {
	if len(ent) < 2 || ent[0] != '#' {
		return 0, false
	}
	var n uint64
	var err error
	if ent[1] == 'x' || ent[1] == 'X' {
		n, err = strconv.ParseUint(ent[2:], 16, 32)
	} else {
		n, err = strconv.ParseUint(ent[1:], 10, 32)
	}
	if err != nil || n == 0 || n > utf8.MaxRune || !utf8.ValidRune(rune(n)) {
		return 0, false
	}
	return rune(n), true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
