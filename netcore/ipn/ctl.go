package ipn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/mnet-project/mnet/netcore"

	"github.com/mnet-project/mnet/tap"
)

// ctlError is a failed ctl command: the errno for the write and the reason
// kept for last-error.
type ctlError struct {
	errno  syscall.Errno
	reason string
}

func (e *ctlError) Error() string { return e.reason }

func ctlErr(errno syscall.Errno, format string, args ...any) *ctlError {
	return &ctlError{errno, fmt.Sprintf(format, args...)}
}

// ctlCommand is one parsed line, ready to apply.
type ctlCommand struct {
	line  string
	apply func(n *Network) *ctlError // called with n.mu held
	// attach is set for tap and grab: the interface is opened before
	// anything is applied. detach names the interface of a detach.
	attach *ifaceAttach
	detach string
	// maxPorts is the value of a maxports line, which the interface
	// check needs before anything is applied.
	maxPorts int
}

// applyCtl runs the commands in text, one per line. Every line is checked
// before any is applied, so a write with a bad line changes nothing; the
// errno of the first bad line is the write's and its reason is kept for
// last-error.
func (n *Network) applyCtl(c *netcore.Cred, text string) error {
	var cmds []ctlCommand
	var bad *ctlError
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		cmd, err := parseCtl(c, line)
		if err != nil {
			bad = err
			break
		}
		cmds = append(cmds, cmd)
	}
	// Interfaces are opened first, outside the network's lock (they take
	// system calls); a failure closes the ones opened so far.
	var attached []*Port
	var detached []*Port
	if bad == nil {
		for _, cmd := range cmds {
			if cmd.attach == nil {
				continue
			}
			if bad = cmd.attach.open(n); bad != nil {
				break
			}
		}
	}
	n.mu.Lock()
	wasPersist := n.set.Persist
	if bad == nil {
		bad = n.checkIfacesLocked(cmds)
	}
	if bad == nil {
		for _, cmd := range cmds {
			switch {
			case cmd.attach != nil:
				attached = append(attached, n.attachLocked(cmd.attach))
			case cmd.detach != "":
				p := n.ifacePort(cmd.detach)
				n.detachLocked(p)
				detached = append(detached, p)
			default:
				if err := cmd.apply(n); err != nil {
					bad = err
				}
			}
			if bad != nil {
				break
			}
			n.fam.log.Info("ctl", "network", n.name, "uid", c.Uid, "command", cmd.line)
		}
	}
	if bad != nil {
		n.lastError = bad.reason
	}
	persist := n.set.Persist || wasPersist
	n.lossless.Store(n.set.Lossless)
	n.mu.Unlock()
	n.space.broadcast() // qlen or lossless may have changed what senders wait for
	for _, cmd := range cmds {
		if cmd.attach != nil {
			cmd.attach.abort(n) // opened but not applied: a later line failed
		}
	}
	for _, p := range attached {
		go p.pump()
	}
	for _, p := range detached {
		n.release(p, false)
	}
	if bad != nil {
		n.fam.log.Info("ctl refused", "network", n.name, "uid", c.Uid, "err", bad.reason, "errno", bad.errno.Error())
	}
	if bad != nil {
		return bad.errno
	}
	if persist && len(cmds) > 0 {
		// The settings apply either way; the caller learns that they
		// will not survive a restart.
		if err := n.fam.saveState(); err != nil {
			n.mu.Lock()
			n.lastError = "persist: cannot write the state file: " + err.Error()
			n.mu.Unlock()
			return syscall.EIO
		}
	}
	return nil
}

func parseCtl(c *netcore.Cred, line string) (ctlCommand, *ctlError) {
	word, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	cmd := ctlCommand{line: line}
	num := func(lo, hi int) (int, *ctlError) {
		v, err := strconv.Atoi(arg)
		if err != nil {
			return 0, ctlErr(syscall.EINVAL, "%s: %q is not a number", word, arg)
		}
		if v < lo || v > hi {
			return 0, ctlErr(syscall.EINVAL, "%s: %d out of range %d..%d", word, v, lo, hi)
		}
		return v, nil
	}
	flag := func() (bool, *ctlError) {
		switch arg {
		case "on":
			return true, nil
		case "off":
			return false, nil
		}
		return false, ctlErr(syscall.EINVAL, "%s: want on or off, not %q", word, arg)
	}
	switch word {
	case "policy":
		if arg != PolicyHub && arg != PolicySwitch {
			return cmd, ctlErr(syscall.EINVAL, "policy: want hub or switch, not %q", arg)
		}
		cmd.apply = func(n *Network) *ctlError {
			if n.set.Policy != arg {
				n.set.Policy = arg
				n.fdb.init()
			}
			return nil
		}
	case "mtu":
		v, err := num(MinMTU, MaxMTU)
		if err != nil {
			return cmd, err
		}
		cmd.apply = func(n *Network) *ctlError { n.set.MTU = v; return nil }
	case "qlen":
		v, err := num(1, MaxQlen)
		if err != nil {
			return cmd, err
		}
		cmd.apply = func(n *Network) *ctlError { n.set.Qlen = v; return nil }
	case "maxports":
		v, err := num(1, MaxMaxPorts)
		if err != nil {
			return cmd, err
		}
		cmd.maxPorts = v
		cmd.apply = func(n *Network) *ctlError { n.set.MaxPorts = v; return nil }
	case "lossless":
		v, err := flag()
		if err != nil {
			return cmd, err
		}
		cmd.apply = func(n *Network) *ctlError { n.set.Lossless = v; return nil }
	case "persist":
		v, err := flag()
		if err != nil {
			return cmd, err
		}
		cmd.apply = func(n *Network) *ctlError { n.set.Persist = v; return nil }
	case "descr":
		if len(arg) > MaxDescr {
			return cmd, ctlErr(syscall.EINVAL, "descr: %d bytes, at most %d", len(arg), MaxDescr)
		}
		cmd.apply = func(n *Network) *ctlError { n.set.Descr = arg; return nil }
	case "tap", "grab", "detach":
		if !c.Root() {
			return cmd, ctlErr(syscall.EPERM, "%s: only root may attach interfaces", word)
		}
		if arg == "" {
			return cmd, ctlErr(syscall.EINVAL, "%s: missing interface name", word)
		}
		if err := tap.CheckName(arg); err != nil {
			return cmd, ctlErr(syscall.EINVAL, "%s: %v", word, err)
		}
		if word == "detach" {
			cmd.detach = arg
		} else {
			cmd.attach = &ifaceAttach{kind: word, name: arg}
		}
	default:
		return cmd, ctlErr(syscall.EINVAL, "unknown command %q", word)
	}
	return cmd, nil
}

// checkIfacesLocked checks what only the network's current ports can
// tell, so that a write fails before anything of it is applied: each
// detach names an interface attached here (or by an earlier line), and the
// interfaces fit under maxports.
func (n *Network) checkIfacesLocked(cmds []ctlCommand) *ctlError {
	attached := map[string]bool{}
	for _, p := range n.portList {
		if p.dev != nil {
			attached[p.name] = true
		}
	}
	ports, maxPorts := len(n.portList), n.set.MaxPorts
	for _, cmd := range cmds {
		switch {
		case cmd.attach != nil:
			ports++
			attached[cmd.attach.name] = true
			if ports > maxPorts {
				return ctlErr(syscall.EBUSY, "%s: the network has maxports (%d) ports", cmd.line, maxPorts)
			}
		case cmd.detach != "":
			if !attached[cmd.detach] {
				return ctlErr(syscall.ENODEV, "detach %s: not attached to this network", cmd.detach)
			}
			delete(attached, cmd.detach)
			ports--
		case cmd.maxPorts > 0:
			maxPorts = cmd.maxPorts
		}
	}
	return nil
}

// checkSettings validates settings read from the state file.
func checkSettings(s Settings) error {
	switch {
	case s.Policy != PolicyHub && s.Policy != PolicySwitch:
		return errors.New("bad policy")
	case s.MTU < MinMTU || s.MTU > MaxMTU:
		return errors.New("bad mtu")
	case s.Qlen < 1 || s.Qlen > MaxQlen:
		return errors.New("bad qlen")
	case s.MaxPorts < 1 || s.MaxPorts > MaxMaxPorts:
		return errors.New("bad maxports")
	case len(s.Descr) > MaxDescr:
		return errors.New("descr too long")
	}
	return nil
}
