package plugins

import (
	"fmt"
	"strings"

	"github.com/finderbot/finderbot/sdk"
)

// checkDescription refuses a description the daemon could not route calls
// by, or whose texts are past sdk.MaxDescribeText. A plugin describes itself
// the same way after every restart, so restarting cannot help: it is
// refused until it is fixed.
func checkDescription(d *sdk.DescribeResponse) error {
	if err := describeBounds(d); err != nil {
		return fmt.Errorf("%w: describe: %w; the plugin must be fixed", ErrRefused, err)
	}
	seen := map[string]bool{}
	for _, a := range d.Actions {
		if a.Name == "" || strings.ContainsAny(a.Name, ". \t\n") {
			return fmt.Errorf("%w: describe: action name %q is empty or contains a dot or space", ErrRefused, a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("%w: describe: action %q is described twice", ErrRefused, a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// describeBounds checks every text of d against sdk.MaxDescribeText. Texts
// past it are named by where they are, never quoted.
func describeBounds(d *sdk.DescribeResponse) error {
	check := func(what, s string) error {
		if len(s) > sdk.MaxDescribeText {
			return fmt.Errorf("%s is %d bytes, more than the limit of %d", what, len(s), sdk.MaxDescribeText)
		}
		return nil
	}
	if err := check("the name", d.Name); err != nil {
		return err
	}
	if err := check("the version", d.Version); err != nil {
		return err
	}
	if err := check("the description", d.Description); err != nil {
		return err
	}
	for i, a := range d.Actions {
		act := fmt.Sprintf("action %d", i+1)
		if err := check(act+"'s name", a.Name); err != nil {
			return err
		}
		act = fmt.Sprintf("action %q", a.Name)
		if err := check(act+"'s description", a.Description); err != nil {
			return err
		}
		for j, p := range a.Params {
			par := fmt.Sprintf("%s's parameter %d", act, j+1)
			if err := check(par+"'s name", p.Name); err != nil {
				return err
			}
			par = fmt.Sprintf("%s's parameter %q", act, p.Name)
			if err := check(par+"'s description", p.Description); err != nil {
				return err
			}
			if err := check(par+"'s default", p.Default); err != nil {
				return err
			}
		}
	}
	return nil
}
