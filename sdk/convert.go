package sdk

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/finderbot/finderbot/sdk/internal/pluginpb"
)

// The functions below convert between sdk's types and the wire protocol.
// They are the only place that knows both, so the protocol can change
// without touching plugins.

func timeToProto(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeFromProto(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func describeToProto(d *DescribeResponse) *pluginpb.DescribeResponse {
	out := &pluginpb.DescribeResponse{Name: d.Name, Version: d.Version, Description: d.Description}
	for _, a := range d.Actions {
		pa := &pluginpb.Action{Name: a.Name, Description: a.Description}
		for _, p := range a.Params {
			pa.Params = append(pa.Params, &pluginpb.Param{
				Name: p.Name, Description: p.Description, Required: p.Required, Default: p.Default,
			})
		}
		out.Actions = append(out.Actions, pa)
	}
	return out
}

// Bounds on what the daemon takes from a plugin's answer: they keep a
// plugin from making the daemon allocate without end, send a flood of
// messages, or log megabytes, with one answer.
const (
	// MaxResponseBytes bounds the encoded size of one answer.
	MaxResponseBytes = 8 << 20
	// MaxResponseMessages bounds the replies plus sends of one answer.
	MaxResponseMessages = 100
	// MaxResponseText bounds the text of one reply or send, in bytes.
	MaxResponseText = 64 << 10
	// MaxDiagnostics bounds the diagnostics of one answer.
	MaxDiagnostics = 100
	// MaxActions bounds the actions a plugin may describe.
	MaxActions = 1000
	// MaxDescribeText bounds each text of a description, in bytes: the
	// plugin's name, version and description, and each action's and
	// parameter's name, description and default. The daemon refuses a
	// plugin past it.
	MaxDescribeText = 4 << 10
	// MaxNameBytes bounds the names a plugin hands the daemon: a send's
	// Account, To and Session, key-value keys and prefixes, and session
	// names.
	MaxNameBytes = 1 << 10
	// MaxErrorText bounds the text of a plugin's error or health problem as
	// the daemon keeps it; the rest is cut.
	MaxErrorText = 4 << 10
)

func describeFromProto(d *pluginpb.DescribeResponse) (*DescribeResponse, error) {
	if n := len(d.GetActions()); n > MaxActions {
		return nil, fmt.Errorf("the plugin describes %d actions, more than the limit of %d", n, MaxActions)
	}
	out := &DescribeResponse{Name: d.GetName(), Version: d.GetVersion(), Description: d.GetDescription()}
	for _, a := range d.GetActions() {
		act := Action{Name: a.GetName(), Description: a.GetDescription()}
		for _, p := range a.GetParams() {
			act.Params = append(act.Params, Param{
				Name: p.GetName(), Description: p.GetDescription(), Required: p.GetRequired(), Default: p.GetDefault(),
			})
		}
		out.Actions = append(out.Actions, act)
	}
	return out, nil
}

func handleRequestToProto(r *HandleRequest) *pluginpb.HandleRequest {
	out := &pluginpb.HandleRequest{
		Id:      r.ID,
		Action:  r.Action,
		Params:  r.Params,
		Message: messageToProto(r.Message),
		Account: r.Account,
	}
	if r.Tick != nil {
		out.Tick = &pluginpb.Tick{Schedule: r.Tick.Schedule, TimeUnixNano: timeToProto(r.Tick.Time)}
	}
	return out
}

func handleRequestFromProto(r *pluginpb.HandleRequest) *HandleRequest {
	out := &HandleRequest{
		ID:      r.GetId(),
		Action:  r.GetAction(),
		Params:  r.GetParams(),
		Message: messageFromProto(r.GetMessage()),
		Account: r.GetAccount(),
	}
	if out.Params == nil {
		out.Params = map[string]string{}
	}
	if t := r.GetTick(); t != nil {
		out.Tick = &Tick{Schedule: t.GetSchedule(), Time: timeFromProto(t.GetTimeUnixNano())}
	}
	return out
}

func messageToProto(m *Message) *pluginpb.Message {
	if m == nil {
		return nil
	}
	out := &pluginpb.Message{
		Id:           m.ID,
		Seq:          m.Seq,
		Type:         m.Type,
		RawType:      int64(m.RawType),
		Text:         m.Text,
		Content:      m.Content,
		From:         m.From,
		To:           m.To,
		Session:      m.Session,
		FromSelf:     m.FromSelf,
		TimeUnixNano: timeToProto(m.Time),
		Source:       m.Source,
		Account:      m.Account,
		ParseError:   m.ParseError,
	}
	if m.Sys != nil {
		out.Sys = &pluginpb.SysMsg{Type: m.Sys.Type, Fields: m.Sys.Fields}
	}
	if i := m.Image; i != nil {
		out.Image = &pluginpb.Image{
			AesKey: i.AESKey, Md5: i.MD5, Length: i.Length, HdLength: i.HDLength,
			ThumbUrl: i.ThumbURL, MidUrl: i.MidURL, BigUrl: i.BigURL,
			ThumbWidth: int64(i.ThumbWidth), ThumbHeight: int64(i.ThumbHeight), Attrs: i.Attrs,
		}
	}
	return out
}

func messageFromProto(m *pluginpb.Message) *Message {
	if m == nil {
		return nil
	}
	out := &Message{
		ID:         m.GetId(),
		Seq:        m.GetSeq(),
		Type:       m.GetType(),
		RawType:    int(m.GetRawType()),
		Text:       m.GetText(),
		Content:    m.GetContent(),
		From:       m.GetFrom(),
		To:         m.GetTo(),
		Session:    m.GetSession(),
		FromSelf:   m.GetFromSelf(),
		Time:       timeFromProto(m.GetTimeUnixNano()),
		Source:     m.GetSource(),
		Account:    m.GetAccount(),
		ParseError: m.GetParseError(),
	}
	if s := m.GetSys(); s != nil {
		out.Sys = &SysMsg{Type: s.GetType(), Fields: s.GetFields()}
	}
	if i := m.GetImage(); i != nil {
		out.Image = &Image{
			AESKey: i.GetAesKey(), MD5: i.GetMd5(), Length: i.GetLength(), HDLength: i.GetHdLength(),
			ThumbURL: i.GetThumbUrl(), MidURL: i.GetMidUrl(), BigURL: i.GetBigUrl(),
			ThumbWidth: int(i.GetThumbWidth()), ThumbHeight: int(i.GetThumbHeight()), Attrs: i.GetAttrs(),
		}
	}
	return out
}

func handleResponseToProto(r *HandleResponse) *pluginpb.HandleResponse {
	out := &pluginpb.HandleResponse{}
	if r == nil {
		return out
	}
	for _, rep := range r.Replies {
		out.Replies = append(out.Replies, &pluginpb.Reply{Text: rep.Text, Image: rep.Image})
	}
	for _, s := range r.Sends {
		out.Sends = append(out.Sends, sendToProto(s))
	}
	for _, d := range r.Diagnostics {
		out.Diagnostics = append(out.Diagnostics, &pluginpb.Diagnostic{
			Severity: pluginpb.Diagnostic_Severity(d.Severity), Summary: d.Summary, Detail: d.Detail,
		})
	}
	return out
}

func handleResponseFromProto(r *pluginpb.HandleResponse) (*HandleResponse, error) {
	if n := len(r.GetReplies()) + len(r.GetSends()); n > MaxResponseMessages {
		return nil, fmt.Errorf("the plugin answered with %d replies and sends, more than the limit of %d", n, MaxResponseMessages)
	}
	if n := len(r.GetDiagnostics()); n > MaxDiagnostics {
		return nil, fmt.Errorf("the plugin answered with %d diagnostics, more than the limit of %d", n, MaxDiagnostics)
	}
	out := &HandleResponse{}
	for i, rep := range r.GetReplies() {
		if n := len(rep.GetText()); n > MaxResponseText {
			return nil, fmt.Errorf("reply %d is %d bytes, more than the limit of %d", i+1, n, MaxResponseText)
		}
		if n := len(rep.GetImage()); n > MaxResponseText {
			return nil, fmt.Errorf("reply %d: its image URL is %d bytes, more than the limit of %d", i+1, n, MaxResponseText)
		}
		out.Replies = append(out.Replies, Reply{Text: rep.GetText(), Image: rep.GetImage()})
	}
	for i, s := range r.GetSends() {
		send := sendFromProto(s)
		if err := checkSend(send); err != nil {
			return nil, fmt.Errorf("send %d: %w", i+1, err)
		}
		out.Sends = append(out.Sends, send)
	}
	for _, d := range r.GetDiagnostics() {
		out.Diagnostics = append(out.Diagnostics, Diagnostic{
			Severity: Severity(d.GetSeverity()), Summary: d.GetSummary(), Detail: d.GetDetail(),
		})
	}
	return out, nil
}

// checkSend checks a send against MaxResponseText and MaxNameBytes, the
// same whether it comes in an answer or through Host.Send.
func checkSend(s Send) error {
	if n := len(s.Text); n > MaxResponseText {
		return fmt.Errorf("text is %d bytes, more than the limit of %d", n, MaxResponseText)
	}
	if err := checkName("account", s.Account); err != nil {
		return err
	}
	if err := checkName("to", s.To); err != nil {
		return err
	}
	return checkName("session", s.Session)
}

// checkName checks a name a plugin hands the daemon against MaxNameBytes.
// The name is not quoted: it may be the problem.
func checkName(what, s string) error {
	if n := len(s); n > MaxNameBytes {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d", what, n, MaxNameBytes)
	}
	return nil
}

// cutError bounds a plugin's error text to MaxErrorText.
func cutError(s string) string {
	if len(s) <= MaxErrorText {
		return s
	}
	kept := CutText(s, MaxErrorText)
	return fmt.Sprintf("%s… (%d more bytes cut)", kept, len(s)-len(kept))
}

// CutText returns at most the first n bytes of s, cut before a character
// that would not fit whole, so that valid UTF-8 stays valid: for a text
// that must fit a bound such as MaxResponseText.
func CutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}

func sendToProto(s Send) *pluginpb.Send {
	return &pluginpb.Send{Account: s.Account, To: s.To, Session: s.Session, Text: s.Text}
}

func sendFromProto(s *pluginpb.Send) Send {
	return Send{Account: s.GetAccount(), To: s.GetTo(), Session: s.GetSession(), Text: s.GetText()}
}
