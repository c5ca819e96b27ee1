package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// nameArity makes the argument-count errors of cmd and its subcommands
// name what is missing, from each command's Use line, instead of cobra's
// "accepts 1 arg(s), received 0".
func nameArity(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		nameArity(c)
		if check := c.Args; check != nil {
			c.Args = func(c *cobra.Command, args []string) error {
				if check(c, args) == nil {
					return nil
				}
				return arityError(c, args)
			}
		}
	}
}

// arityError says what c expects, read from its Use line, and what it got.
func arityError(c *cobra.Command, args []string) error {
	positional, required := usageArgs(c.Use)
	help := fmt.Sprintf("see '%s --help'", c.CommandPath())
	if len(args) < len(required) {
		usage := ""
		if len(positional) > len(required) {
			usage = fmt.Sprintf(" (usage: %s %s)", c.Parent().CommandPath(), c.Use)
		}
		return fmt.Errorf("%s needs %s%s; %s", c.Name(), strings.Join(required, " "), usage, help)
	}
	takes := strings.Join(positional, " ")
	if takes == "" {
		takes = "no arguments"
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Errorf("%s takes %s, got %d: %s; %s", c.Name(), takes, len(args), strings.Join(quoted, " "), help)
}

// usageArgs reads the positional part of a Use line ("why [RECIPE|ARTIFACT]
// PATH"): all of it in order, and the required words alone. A flag and its
// value ("-o FILE") are not arguments.
func usageArgs(use string) (positional, required []string) {
	words := strings.Fields(use)[1:]
	var group []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case len(group) > 0 || strings.HasPrefix(w, "["):
			group = append(group, w)
			if strings.HasSuffix(w, "]") {
				positional = append(positional, strings.Join(group, " "))
				group = nil
			}
		case strings.HasPrefix(w, "-"):
			i++ // the flag's value
		default:
			positional = append(positional, w)
			required = append(required, w)
		}
	}
	return positional, required
}

// argCounts accepts any of the given numbers of arguments.
func argCounts(ns ...int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		for _, n := range ns {
			if len(args) == n {
				return nil
			}
		}
		return fmt.Errorf("got %d arguments", len(args))
	}
}
