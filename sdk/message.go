package sdk

import (
	"strconv"
	"time"
)

// Message types, as found in Message.Type. Type is derived from the upstream's
// numeric MsgType, which stays available in Message.RawType.
const (
	TypeText     = "text"
	TypeImage    = "image"
	TypeVoice    = "voice"
	TypeVideo    = "video"
	TypeEmoji    = "emoji"
	TypeLocation = "location"
	TypeApp      = "app"
	TypeSystem   = "system"
	TypeUnknown  = "unknown"
)

// Raw upstream MsgType values that finderbot recognises.
const (
	RawText       = 1
	RawImage      = 3
	RawVoice      = 34
	RawVideo      = 43
	RawEmoji      = 47
	RawLocation   = 48
	RawApp        = 49
	RawShortVideo = 62
	RawNotice     = 10000
	RawSysMsg     = 10002
)

// TypeOf maps an upstream MsgType to a Message.Type. Types finderbot does not
// know map to TypeUnknown; such messages are still delivered, never dropped.
func TypeOf(raw int) string {
	switch raw {
	case RawText:
		return TypeText
	case RawImage:
		return TypeImage
	case RawVoice:
		return TypeVoice
	case RawVideo, RawShortVideo:
		return TypeVideo
	case RawEmoji:
		return TypeEmoji
	case RawLocation:
		return TypeLocation
	case RawApp:
		return TypeApp
	case RawNotice, RawSysMsg:
		return TypeSystem
	}
	return TypeUnknown
}

// Message is one Finder (视频号) private message or notice, as rules and
// plugins see it.
//
// For an incoming private message, From is the other party (a
// "...@findermsgstranger" or wxid user), To is the account's own Finder
// identity ("...@finder") and Session is the conversation id
// ("...@findermsg") needed to answer it.
type Message struct {
	// ID is the upstream NewMsgId. It is exact: values exceed 2^53 and are
	// never passed through a float.
	ID uint64 `json:"id,string"`
	// Seq is the message's sequence number in the account's sync stream.
	Seq int64 `json:"seq"`
	// Type is one of the Type* constants.
	Type string `json:"type"`
	// RawType is the upstream MsgType, kept for types finderbot does not know.
	RawType int `json:"raw_type"`
	// Text is the text of a text message, and "" for every other type.
	Text string `json:"text,omitempty"`
	// Content is the raw content as received (XML for images and notices).
	Content string `json:"content,omitempty"`
	// From is the sender's user name (FromUserName).
	From string `json:"from,omitempty"`
	// To is the receiver's user name (ToUserName).
	To string `json:"to,omitempty"`
	// Session is the conversation id (msgSessionId) a reply must carry.
	Session string `json:"session,omitempty"`
	// FromSelf is true for messages this account sent itself (isSender 1).
	// Rules should never answer them.
	FromSelf bool `json:"from_self,omitempty"`
	// Time is the message's creation time (CreateTime).
	Time time.Time `json:"time"`
	// Source is the raw MsgSource XML, often empty.
	Source string `json:"source,omitempty"`
	// Sys holds the parsed <sysmsg> of a system notice, or nil.
	Sys *SysMsg `json:"sys,omitempty"`
	// Image holds the parsed <img> attributes of an image message, or nil.
	Image *Image `json:"image,omitempty"`
	// Account is the name of the finderbot account that received the
	// message. The decoder leaves it empty; the daemon fills it in.
	Account string `json:"account,omitempty"`
	// ParseError describes why Content could not be parsed into Sys or
	// Image, when it could not. The message is delivered all the same.
	ParseError string `json:"parse_error,omitempty"`
}

// IDString returns the message id in decimal, the form in which it is safe to
// hand to systems that store numbers as floats.
func (m *Message) IDString() string { return strconv.FormatUint(m.ID, 10) }

// SysMsg is a parsed system notice: the Content of a MsgType 10002 item,
// which is XML of the form <sysmsg type="T"><T>...fields...</T></sysmsg>.
type SysMsg struct {
	// Type is the sysmsg's type attribute, for example
	// "finderliveclosenotifymsg" (a Finder live stream ended) or
	// "functionmsg".
	Type string `json:"type"`
	// Fields holds the text of every leaf element inside the element named
	// after Type, keyed by its path below that element with "." between
	// levels: for a live-close notice "live_id", "object_id", "revoke_id",
	// "tips_id" and "functionmsgid".
	Fields map[string]string `json:"fields,omitempty"`
}

// Field returns the named field, or "" when the notice has none.
func (s *SysMsg) Field(name string) string {
	if s == nil {
		return ""
	}
	return s.Fields[name]
}

// Image is the parsed <img> element of an image message's Content.
type Image struct {
	// AESKey is the key the CDN copies are encrypted with.
	AESKey string `json:"aeskey,omitempty"`
	// MD5 is the digest of the full image.
	MD5 string `json:"md5,omitempty"`
	// Length is the size of the full image in bytes.
	Length int64 `json:"length,omitempty"`
	// HDLength is the size of the high-definition copy in bytes.
	HDLength int64 `json:"hdlength,omitempty"`
	// ThumbURL, MidURL and BigURL are the CDN ids of the thumbnail, the
	// mid-sized and the full image.
	ThumbURL string `json:"cdnthumburl,omitempty"`
	MidURL   string `json:"cdnmidimgurl,omitempty"`
	BigURL   string `json:"cdnbigimgurl,omitempty"`
	// ThumbWidth and ThumbHeight are the thumbnail's size in pixels.
	ThumbWidth  int `json:"cdnthumbwidth,omitempty"`
	ThumbHeight int `json:"cdnthumbheight,omitempty"`
	// Attrs holds every attribute of the <img> element as received,
	// including the ones above.
	Attrs map[string]string `json:"attrs,omitempty"`
}
