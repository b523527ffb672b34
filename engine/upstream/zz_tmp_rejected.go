package upstream

import "errors"

func Rejected(err error) bool {
	var e *Error
	var se *StatusError
	if errors.As(err, &e) {
		return true
	}
	if errors.As(err, &se) {
		return se.StatusCode < 500 || se.StatusCode == 503
	}
	return false
}
