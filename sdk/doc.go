// Package sdk is everything a finderbot plugin author imports: the Finder
// message model that rules and plugins see, and (with the plugin runtime) the
// types a plugin exchanges with the daemon.
//
// Messages arrive from the upstream's /syncFinder endpoint as pages. DecodePage
// turns the JSON "data" object of such a reply into a Page of Messages, keeping
// every field a rule or plugin may need and the page's keyBuff cursor exactly
// as it was received.
package sdk
