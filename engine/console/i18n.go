package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// lang is a language of the UI: "zh" or "en".
type lang string

const (
	langZH lang = "zh"
	langEN lang = "en"

	langCookie = "finderbot_lang"
)

// messages holds every UI text, one table per language; a test keeps their
// keys equal. Values with verbs are fmt formats.
var messages = map[lang]map[string]string{
	langZH: {
		"lang.tag": "zh-CN", "lang.other": "English", "lang.switch": "切换语言",
		"nav.main": "主导航", "nav.overview": "概览", "nav.login": "登录", "nav.conversations": "会话",
		"nav.dead_letters": "死信", "nav.rules": "规则", "nav.events": "事件", "nav.signout": "退出",
		"title.overview": "概览", "title.login": "登录", "title.conversations": "会话",
		"title.dead_letters": "死信", "title.rules": "规则", "title.events": "事件",
		"title.signin": "登录控制台", "title.error": "出错了",
		"h.accounts": "账号", "h.sessions": "会话保持", "h.plugins": "插件", "overview.started": "启动于",
		"overview.filter": "按名称或 wcId 筛选", "overview.filter_go": "筛选", "overview.total": "共 %d 个账号:",
		"overview.hidden": "只列出最需要处理的 %d 个,还有 %d 个未列出;用筛选找到它们。",
		"col.name":        "名称", "col.state": "状态", "col.wcid": "wcId", "col.last_sync": "上次同步",
		"col.in_per_min": "收到/分钟", "col.out_per_min": "回复/分钟", "col.outbox": "待发送",
		"col.in_doubt": "待确认", "col.dead_letters": "死信", "col.kind": "类型", "col.version": "版本",
		"col.restarts": "重启次数", "col.problem": "问题", "col.time": "时间", "col.direction": "方向",
		"col.text": "内容", "col.rules": "匹配规则", "col.actions": "动作", "col.id": "编号",
		"col.account": "账号", "col.to": "接收者", "col.reason": "原因", "col.attempts": "尝试记录",
		"col.created": "创建时间", "col.rule": "规则", "col.file": "文件", "col.matches": "匹配次数",
		"col.failures": "失败次数", "col.matched": "匹配", "col.why": "原因", "col.message": "消息",
		"none": "无", "yes": "是", "no": "否", "time.never": "从未",
		"ago.s": "%d 秒前", "ago.min": "%d 分钟前", "ago.h": "%d 小时前", "ago.d": "%d 天前",
		"login.scan": "请用微信扫描二维码", "login.qr_alt": "%s 的登录二维码",
		"login.expires": "二维码过期时间", "login.remaining": "剩余时间", "login.expired": "已过期",
		"login.slider": "打开滑块验证", "login.code_verify": "手机上显示的验证码", "login.code_sms": "短信验证码",
		"state.logged_out": "未登录", "state.logging_in": "登录中", "state.needs_scan": "等待扫码",
		"state.needs_code": "等待验证码", "state.needs_slider": "等待滑块验证", "state.online": "在线",
		"state.backing_off": "稍后重试", "state.refreshing": "刷新中", "state.kicked": "被踢下线",
		"state.expired": "已过期", "state.waiting_for_lease": "等待租约", "state.starting": "启动中",
		"state.ready": "就绪", "state.restarting": "重启中", "state.quarantined": "已隔离",
		"state.refused": "已拒绝", "state.stopped": "已停止",
		"login.submit_code": "提交验证码", "login.online": "已在线", "login.start": "开始登录",
		"login.empty":  "没有需要登录的账号或会话。",
		"conv.account": "账号", "conv.show": "查看", "conv.empty": "该账号暂无消息。", "conv.peer": "对方",
		"dir.in": "收到", "dir.out": "发出",
		"dl.retry": "重试", "dl.drop": "丢弃", "dl.retry_kind": "重试此类型的全部死信",
		"dl.in_doubt": "可能已发出", "dl.empty": "没有死信。", "dl.attempts": "%d 次尝试",
		"rules.try": "试一条消息", "rules.account": "账号", "rules.text": "消息内容", "rules.try_button": "试试看",
		"rules.answer": "回答它的规则", "rules.no_answer": "没有规则回答这条消息。", "rules.reload": "重新加载规则",
		"rules.empty":  "没有加载任何规则。",
		"events.empty": "暂无事件。",
		"signin.token": "管理令牌", "signin.submit": "登录", "signin.wrong": "令牌不正确。",
		"signin.limited":  "失败次数太多，请稍后再试。",
		"flash.code_sent": "验证码已提交。", "flash.login_started": "已开始登录。", "flash.retried": "死信已重新排队。",
		"flash.dropped": "死信已丢弃。", "flash.retried_n": "已重新排队 %d 条死信。", "flash.reloaded": "规则已重新加载。",
		"err.code_empty": "请输入验证码。", "err.csrf": "请求被拒绝：缺少或错误的 CSRF 令牌，或来自其他站点。请刷新页面后重试。",
		"err.not_found": "找不到该页面或对象。", "err.bad_id": "编号无效。", "err.kind_empty": "请指定死信类型。",
		"err.remote":           "控制台在非回环地址上需要设置 admin.token。",
		"err.host":             "请求的主机名不是本机地址；未设置令牌时控制台只接受 localhost 或回环 IP。",
		"err.too_many_streams": "实时连接过多，请稍后再试。",
	},
	langEN: {
		"lang.tag": "en", "lang.other": "中文", "lang.switch": "Switch language",
		"nav.main": "Main", "nav.overview": "Overview", "nav.login": "Login", "nav.conversations": "Conversations",
		"nav.dead_letters": "Dead letters", "nav.rules": "Rules", "nav.events": "Events", "nav.signout": "Sign out",
		"title.overview": "Overview", "title.login": "Login", "title.conversations": "Conversations",
		"title.dead_letters": "Dead letters", "title.rules": "Rules", "title.events": "Events",
		"title.signin": "Sign in to the console", "title.error": "Something went wrong",
		"h.accounts": "Accounts", "h.sessions": "Sessions", "h.plugins": "Plugins", "overview.started": "Started",
		"overview.filter": "Filter by name or wcId", "overview.filter_go": "Filter", "overview.total": "%d accounts:",
		"overview.hidden": "Listing the %d that most need a person; %d more are not listed — filter to find them.",
		"col.name":        "Name", "col.state": "State", "col.wcid": "wcId", "col.last_sync": "Last sync",
		"col.in_per_min": "In /min", "col.out_per_min": "Replies /min", "col.outbox": "Outbox",
		"col.in_doubt": "In doubt", "col.dead_letters": "Dead letters", "col.kind": "Kind", "col.version": "Version",
		"col.restarts": "Restarts", "col.problem": "Problem", "col.time": "Time", "col.direction": "Direction",
		"col.text": "Text", "col.rules": "Rules matched", "col.actions": "Actions", "col.id": "ID",
		"col.account": "Account", "col.to": "Receiver", "col.reason": "Reason", "col.attempts": "Attempts",
		"col.created": "Created", "col.rule": "Rule", "col.file": "File", "col.matches": "Matches",
		"col.failures": "Failures", "col.matched": "Matched", "col.why": "Why", "col.message": "Message",
		"none": "none", "yes": "yes", "no": "no", "time.never": "never",
		"ago.s": "%d s ago", "ago.min": "%d min ago", "ago.h": "%d h ago", "ago.d": "%d d ago",
		"login.scan": "Scan this QR code with WeChat", "login.qr_alt": "Login QR code of %s",
		"login.expires": "QR code expires at", "login.remaining": "Time left", "login.expired": "expired",
		"login.slider": "Open the slider check", "login.code_verify": "Verify code shown on the phone",
		"state.logged_out": "logged out", "state.logging_in": "logging in", "state.needs_scan": "waiting for a scan",
		"state.needs_code": "waiting for a code", "state.needs_slider": "waiting for the slider", "state.online": "online",
		"state.backing_off": "backing off", "state.refreshing": "refreshing", "state.kicked": "kicked",
		"state.expired": "expired", "state.waiting_for_lease": "waiting for its lease", "state.starting": "starting",
		"state.ready": "ready", "state.restarting": "restarting", "state.quarantined": "quarantined",
		"state.refused": "refused", "state.stopped": "stopped",
		"login.code_sms": "SMS code", "login.submit_code": "Submit code", "login.online": "online",
		"login.start": "Start login", "login.empty": "No account or session to log in.",
		"conv.account": "Account", "conv.show": "Show", "conv.empty": "No messages for this account yet.",
		"conv.peer": "Peer", "dir.in": "in", "dir.out": "out",
		"dl.retry": "Retry", "dl.drop": "Drop", "dl.retry_kind": "Retry all of this kind",
		"dl.in_doubt": "may have gone out", "dl.empty": "No dead letters.", "dl.attempts": "%d attempts",
		"rules.try": "Try a message", "rules.account": "Account", "rules.text": "Message text",
		"rules.try_button": "Try", "rules.answer": "Answered by", "rules.no_answer": "No rule answers this message.",
		"rules.reload": "Reload rules", "rules.empty": "No rules loaded.",
		"events.empty": "No events yet.",
		"signin.token": "Admin token", "signin.submit": "Sign in", "signin.wrong": "Wrong token.",
		"signin.limited":  "Too many failures; try again later.",
		"flash.code_sent": "Code submitted.", "flash.login_started": "Login started.",
		"flash.retried": "Dead letter queued again.", "flash.dropped": "Dead letter dropped.",
		"flash.retried_n": "%d dead letters queued again.", "flash.reloaded": "Rules reloaded.",
		"err.code_empty": "Enter the code.",
		"err.csrf":       "Request refused: the CSRF token is missing or wrong, or it came from another site. Reload the page and try again.",
		"err.not_found":  "No such page or object.", "err.bad_id": "Not a valid id.", "err.kind_empty": "Name the kind of dead letters.",
		"err.remote":           "The console needs admin.token on a non-loopback listener.",
		"err.host":             "The request's host is not this machine; without a token the console answers only localhost or a loopback IP.",
		"err.too_many_streams": "Too many live connections; try again later.",
	},
}

// text is the UI text of key in l, formatted with args; an unknown key is
// shown as itself so that a missing text is visible, not blank.
func (l lang) text(key string, args ...any) string {
	s, ok := messages[l][key]
	if !ok {
		return key
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// parseLang accepts the two languages by their primary tag.
func parseLang(s string) (lang, bool) {
	primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "-")
	switch lang(primary) {
	case langZH:
		return langZH, true
	case langEN:
		return langEN, true
	}
	return "", false
}

// pickLang chooses the language of a request: the ?lang switch, then the
// cookie it left, then the most preferred language of Accept-Language that
// the console speaks, then Chinese.
func pickLang(r *http.Request) lang {
	if l, ok := parseLang(r.URL.Query().Get("lang")); ok {
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := parseLang(c.Value); ok {
			return l
		}
	}
	type choice struct {
		l lang
		q float64
	}
	var best []choice
	for part := range strings.SplitSeq(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(part, ";")
		l, ok := parseLang(tag)
		if !ok {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > 0 {
			best = append(best, choice{l, q})
		}
	}
	// Stable, so that among equal weights the first named wins.
	slices.SortStableFunc(best, func(a, b choice) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	if len(best) > 0 {
		return best[0].l
	}
	return langZH
}

// switchURL is the current URL with ?lang set to l, other parameters kept.
func switchURL(r *http.Request, l lang) string {
	q := r.URL.Query()
	q.Set("lang", string(l))
	return (&url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: q.Encode()}).String()
}
