// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
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
	// attach is set for a link kind's line: the link is opened before
	// anything is applied. detach is set for a detach line.
	attach *attachment
	detach *detachment
	// maxPorts is the value of a maxports line, which the link check
	// needs before anything is applied.
	maxPorts int
	// persistOn is set for "persist on", checked against the owner's
	// per-uid limit before anything is applied.
	persistOn bool
	// service is set for a service's line: services are started or
	// stopped once the settings are applied.
	service bool
	// ext applies an extension's line, once the network's own settings
	// are applied and its lock is released.
	ext func() error
	// impair is an impair line, whose port is checked before anything
	// is applied.
	impair *impairLine
	// vlan is set for a vlan or trunk line, whose PORT is checked
	// before anything is applied (vlan.go).
	vlan *vlanCommand
}

// applyCtl runs the commands in text, one per line, for caller c (pinned)
// in its network namespace ns (nil: the daemon cannot see it). Every line
// is checked before any is applied, so a write with a bad line changes
// nothing; the errno of the first bad line is the write's and its reason
// is kept for last-error.
func (n *Network) applyCtl(c *netcore.Cred, ns *netns.NS, text string) error {
	cmds, bad := n.parseCtlText(c, ns, text)
	// persistMu is held from the per-uid check of "persist on" to its
	// apply, and let go before services start (svcMu is taken with no
	// other lock held).
	persistLocked := bad == nil && slices.ContainsFunc(cmds, func(cmd ctlCommand) bool { return cmd.persistOn })
	if persistLocked {
		n.fam.persistMu.Lock()
		bad = n.checkPersistLimit(c)
	}
	if bad == nil {
		bad = n.openLinks(c, ns, cmds)
	}
	var attached, detached []*Port
	n.mu.Lock()
	wasPersist := n.set.Persist
	if bad == nil {
		attached, detached, bad = n.applyCtlLocked(c, cmds)
	}
	if bad != nil {
		n.lastError = bad.reason
	}
	persist := n.set.Persist || wasPersist
	n.lossless.Store(n.set.Lossless)
	n.mu.Unlock()
	if persistLocked {
		n.fam.persistMu.Unlock()
	}
	n.space.Broadcast() // qlen or lossless may have changed what senders wait for
	n.settleLinks(cmds, attached, detached)
	if bad == nil {
		bad = n.applyExtCtl(c, cmds)
	}
	if bad != nil {
		n.fam.log.Info("ctl refused", "network", n.name, "uid", c.Uid, "err", bad.reason, "errno", bad.errno.Error())
		return bad.errno
	}
	return n.commitCtl(cmds, persist)
}

// parseCtlText parses every line of text (blank lines and # comments
// aside), each as an extension's line or else one of the network's own;
// it stops at the first bad one.
func (n *Network) parseCtlText(c *netcore.Cred, ns *netns.NS, text string) ([]ctlCommand, *ctlError) {
	var cmds []ctlCommand
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		cmd, err := n.parseExtCtl(c, line)
		if cmd.ext == nil && err == nil {
			cmd, err = parseCtl(c, line)
		}
		if err != nil {
			return cmds, err
		}
		d := cmd.detach
		switch {
		case cmd.vlan != nil:
			d = cmd.vlan.port.link
		case cmd.impair != nil:
			d = cmd.impair.port.link
		}
		if d != nil {
			// A detach (and a PORT of a vlan, trunk or impair
			// line) names the attachment in the writer's namespace.
			if ns == nil || ns.Self() {
				d.anyNS = true
			} else {
				d.ns = ns.ID()
			}
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// openLinks opens the links that cmds attach, before anything is applied
// and outside the network's lock (they take system calls); on a failure
// settleLinks closes the ones opened so far.
func (n *Network) openLinks(c *netcore.Cred, ns *netns.NS, cmds []ctlCommand) *ctlError {
	for _, cmd := range cmds {
		if cmd.attach == nil {
			continue
		}
		if bad := cmd.attach.open(n, c, ns); bad != nil {
			return bad
		}
	}
	return nil
}

// applyCtlLocked applies the network's own lines of cmds in order, once
// the links they attach are checked against the network, and returns the
// ports they attached and detached; extensions' lines wait for
// applyExtCtl. Called with n.mu held.
func (n *Network) applyCtlLocked(c *netcore.Cred, cmds []ctlCommand) (attached, detached []*Port, bad *ctlError) {
	if bad := n.checkLinksLocked(cmds); bad != nil {
		return nil, nil, bad
	}
	for _, cmd := range cmds {
		switch {
		case cmd.attach != nil:
			// It replaces one of its name waiting for its namespace.
			if i := slices.IndexFunc(n.waiting, func(w *waitingLink) bool {
				return w.kind == cmd.attach.kind && w.spec.Name() == cmd.attach.spec.Name()
			}); i >= 0 {
				n.waiting = slices.Delete(n.waiting, i, i+1)
			}
			attached = append(attached, n.attachLocked(cmd.attach))
		case cmd.detach != nil:
			// checkLinksLocked found what it names.
			p := n.detachPortLocked(cmd.detach, cmd.line)
			if p == nil {
				if i := n.detachWaitingLocked(cmd.detach); i >= 0 {
					n.waiting = slices.Delete(n.waiting, i, i+1)
				}
				break
			}
			n.detachLocked(p)
			detached = append(detached, p)
		case cmd.ext != nil:
			continue // after the lock is released
		default:
			if bad := cmd.apply(n); bad != nil {
				return attached, detached, bad
			}
		}
		n.fam.log.Info("ctl", "network", n.name, "uid", c.Uid, "command", cmd.line)
	}
	return attached, detached, nil
}

// settleLinks finishes, outside the network's lock, what applying left to
// the links: the ones opened for lines that were not applied (a later
// line failed) are closed, the attached ones are read from, the detached
// ones released.
func (n *Network) settleLinks(cmds []ctlCommand, attached, detached []*Port) {
	for _, cmd := range cmds {
		if cmd.attach != nil {
			cmd.attach.abort(n)
		}
	}
	for _, p := range attached {
		go p.pump()
	}
	for _, p := range detached {
		n.release(p, false)
	}
}

// applyExtCtl applies the extensions' lines of cmds, once the network's
// own settings are applied and its lock released; it stops at the first
// that fails, whose reason is kept for last-error.
func (n *Network) applyExtCtl(c *netcore.Cred, cmds []ctlCommand) *ctlError {
	for _, cmd := range cmds {
		if cmd.ext == nil {
			continue
		}
		if err := cmd.ext(); err != nil {
			bad := ctlErr(link.ErrnoOf(err), "%v", err)
			n.setLastError(bad.reason)
			return bad
		}
		n.fam.log.Info("ctl", "network", n.name, "uid", c.Uid, "command", cmd.line)
	}
	return nil
}

// commitCtl follows an applied write: services are started or stopped
// if a line switched one, and the state of a network that persists (or
// did before the write) is saved.
func (n *Network) commitCtl(cmds []ctlCommand, persist bool) error {
	// A service that cannot start fails the write, but the setting
	// stands (and is saved: a persistent network tries again at the next
	// start); last-error tells why it does not serve.
	var svcErr error
	if slices.ContainsFunc(cmds, func(cmd ctlCommand) bool { return cmd.service }) {
		svcErr = n.syncServices()
	}
	if persist && len(cmds) > 0 {
		// The settings apply either way; the caller learns that they
		// will not survive a restart.
		if err := n.fam.saveState(); err != nil {
			n.setLastError("persist: cannot write the state file: " + err.Error())
			return syscall.EIO
		}
	}
	if svcErr != nil {
		return link.ErrnoOf(svcErr)
	}
	return nil
}

// setLastError keeps reason for the last-error line of ctl.
func (n *Network) setLastError(reason string) {
	n.mu.Lock()
	n.lastError = reason
	n.mu.Unlock()
}

// refuseCtl records a write refused whole before any line was read (too
// long: EFBIG) for last-error and the log.
func (n *Network) refuseCtl(c *netcore.Cred, reason string, errno error) {
	n.setLastError(reason)
	n.fam.log.Info("ctl refused", "network", n.name, "uid", c.Uid, "err", reason, "errno", errno.Error())
}

// checkPersistLimit refuses "persist on" for a network that does not
// persist yet when its owner already owns as many persistent networks as
// the per-uid limit allows, unless the caller holds CAP_SYS_ADMIN (the
// administrator's reserve). The refusal is logged by the quota. Called
// with f.persistMu held and no other lock.
func (n *Network) checkPersistLimit(c *netcore.Cred) *ctlError {
	n.mu.Lock()
	owner, already := n.uid, n.set.Persist
	n.mu.Unlock()
	if already {
		return nil
	}
	f := n.fam
	f.mu.Lock()
	_, persistent := f.ownedLocked(owner, n)
	f.mu.Unlock()
	if int64(persistent) < f.quota.Limits().PerUid(PersistentNetworks) || c.HasCap(netcore.CapSysAdmin) {
		return nil
	}
	f.quota.Refused(PersistentNetworks, owner)
	return ctlErr(syscall.ENOSPC, "persist: uid %d already owns %d persistent networks, the limit", owner, persistent)
}

// parseExtCtl parses line if its word is an extension's; otherwise it
// returns a command without ext.
func (n *Network) parseExtCtl(c *netcore.Cred, line string) (ctlCommand, *ctlError) {
	word, arg, _ := strings.Cut(line, " ")
	cmd := ctlCommand{line: line}
	x := n.extFor(word)
	if x == nil {
		return cmd, nil
	}
	apply, err := x.inst.Parse(c, word, strings.TrimSpace(arg))
	if err != nil {
		errno := link.ErrnoOf(err)
		if errno == syscall.EIO {
			errno = syscall.EINVAL
		}
		return cmd, ctlErr(errno, "%v", err)
	}
	cmd.ext = apply
	return cmd, nil
}

// ctlWords are the ctl words of ipn itself; every other word is a link
// kind's (package link).
var ctlWords = map[string]bool{"policy": true, "mtu": true, "qlen": true, "maxports": true,
	"lossless": true, "persist": true, "descr": true, "detach": true, "impair": true, "vlan": true, "trunk": true}

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
		policy := Policy(arg)
		if policy != PolicyHub && policy != PolicySwitch {
			return cmd, ctlErr(syscall.EINVAL, "policy: want hub or switch, not %q", arg)
		}
		cmd.apply = func(n *Network) *ctlError {
			if n.set.Policy != policy {
				n.set.Policy = policy
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
		cmd.persistOn = v
		cmd.apply = func(n *Network) *ctlError { n.set.Persist = v; return nil }
	case "descr":
		if len(arg) > MaxDescr {
			return cmd, ctlErr(syscall.EINVAL, "descr: %d bytes, at most %d", len(arg), MaxDescr)
		}
		cmd.apply = func(n *Network) *ctlError { n.set.Descr = arg; return nil }
	case "impair":
		l, err := parseImpair(arg)
		if err != nil {
			return cmd, ctlErr(err.errno, "%s: %s", line, err.reason)
		}
		cmd.impair = &l
		cmd.apply = func(n *Network) *ctlError { return n.applyImpairLocked(l) }
	case "vlan", "trunk":
		v, err := parseVLANLine(word, arg)
		if err != nil {
			return cmd, ctlErr(err.errno, "%s: %s", line, err.reason)
		}
		cmd.vlan = v
		cmd.apply = func(n *Network) *ctlError { return v.apply(n) }
	case "detach":
		d, err := parseDetach(c, uncomment(arg))
		if err != nil {
			return cmd, err
		}
		cmd.detach = d
	default:
		if s := link.LookupService(word); s != nil {
			v, err := flag()
			if err != nil {
				return cmd, err
			}
			cmd.service = true
			cmd.apply = func(n *Network) *ctlError { n.set = withService(n.set, s.Name, v); return nil }
			break
		}
		kind := link.Lookup(word)
		if kind == nil {
			return cmd, ctlErr(syscall.EINVAL, "unknown command %q", word)
		}
		// What reading ctl shows after an attachment ("# not
		// persistent: ...", "# waiting: ...") is a comment.
		arg = uncomment(arg)
		if !kind.Privilege.Held(c) {
			return cmd, ctlErr(syscall.EPERM, "%s: needs %v", word, kind.Privilege)
		}
		spec, err := kind.Parse(arg)
		if err != nil {
			return cmd, ctlErr(link.ErrnoOf(err), "%v", err)
		}
		cmd.attach = &attachment{kind: kind, spec: spec}
	}
	return cmd, nil
}

// uncomment cuts a comment (" # ...") off the argument of an attachment's
// line.
func uncomment(arg string) string {
	if i := strings.Index(arg, " #"); i >= 0 {
		return strings.TrimSpace(arg[:i])
	}
	return arg
}

// detachment is a parsed detach line: "detach NAME" detaches the link
// called NAME, "detach KIND NAME" the one of that kind.
type detachment struct {
	kind *link.Kind // nil: any kind
	name string
	// ns is the caller's namespace pinned at open (zero: the daemon's,
	// or one the daemon cannot see). anyNS: it is one of those two, and
	// a name attached once is found in whatever namespace it is.
	ns    netns.ID
	anyNS bool
}

// pick is the attachment among keys that d names: the one of its name
// in the caller's namespace or, for a caller in the daemon's namespace
// (or one it cannot see), the only one of its name. A caller in another
// namespace never detaches one of a third namespace: every container's
// eth0 is detached from within its own, never another's by mistake.
func (d *detachment) pick(keys []linkKey, line string) (linkKey, *ctlError) {
	var named []linkKey
	for _, k := range keys {
		if k.name == d.name && (d.kind == nil || d.kind == k.kind) {
			if k.ns == d.ns {
				return k, nil
			}
			named = append(named, k)
		}
	}
	switch {
	case len(named) == 1 && d.anyNS:
		return named[0], nil
	case len(named) > 0:
		return linkKey{}, ctlErr(syscall.ENODEV,
			"%s: not attached in the caller's network namespace (attached in %d other namespaces: detach it through a ctl opened in its namespace)",
			line, len(named))
	}
	return linkKey{}, ctlErr(syscall.ENODEV, "%s: not attached to this network", line)
}

// pickWaiting is the waiting attachment among keys that d names: the one
// of its name in the caller's namespace, else the first of its name. A
// waiting one's namespace is gone or is another now, so that the caller
// who made a namespace again under the old name drops it from there.
func (d *detachment) pickWaiting(keys []linkKey) (linkKey, bool) {
	var first *linkKey
	for i, k := range keys {
		if k.name == d.name && (d.kind == nil || d.kind == k.kind) {
			if k.ns == d.ns {
				return k, true
			}
			if first == nil {
				first = &keys[i]
			}
		}
	}
	if first == nil {
		return linkKey{}, false
	}
	return *first, true
}

// parseDetach reads the argument of detach. Detaching needs the
// privilege of the kind; when no kind is named, the highest any kind
// needs, so that a caller without it learns nothing of what is attached.
func parseDetach(c *netcore.Cred, arg string) (*detachment, *ctlError) {
	words := strings.Fields(arg)
	d := &detachment{}
	need := link.PrivNone
	switch len(words) {
	case 1:
		d.name = words[0]
		for _, k := range link.Kinds() {
			need = max(need, k.Privilege)
		}
	case 2:
		d.kind, d.name = link.Lookup(words[0]), words[1]
		if d.kind == nil {
			return nil, ctlErr(syscall.EINVAL, "detach: no link kind %q", words[0])
		}
		need = d.kind.Privilege
	default:
		return nil, ctlErr(syscall.EINVAL, "detach: want a name, or a kind and a name")
	}
	if !need.Held(c) {
		return nil, ctlErr(syscall.EPERM, "detach: needs %v", need)
	}
	return d, nil
}

// checkLinksLocked checks what only the network's current ports can
// tell, so that a write fails before anything of it is applied: each
// detach, and each PORT of a vlan, trunk or impair line, names a link
// attached here (or by an earlier line), and the links fit under maxports.
func (n *Network) checkLinksLocked(cmds []ctlCommand) *ctlError {
	attached := map[linkKey]bool{}
	for _, p := range n.portList {
		if p.spec != nil {
			attached[p.key()] = true
		}
	}
	// Waiting attachments are no ports, but detach takes them away.
	waiting := map[linkKey]bool{}
	for _, w := range n.waiting {
		waiting[w.key()] = true
	}
	ports, maxPorts := len(n.portList), n.set.MaxPorts
	svcNew := map[string]bool{}
	for _, cmd := range cmds {
		switch {
		case cmd.vlan != nil:
			if err := n.checkVLANLocked(cmd, attached, svcNew); err != nil {
				return err
			}
		case cmd.impair != nil && !cmd.impair.all:
			if err := n.checkPortRefLocked(cmd.impair.port, attached, cmd.line); err != nil {
				return err
			}
		case cmd.attach != nil:
			// A name is claimed in its namespace: containers' eth0s
			// join one network, one of a kind per namespace.
			k := cmd.attach.key()
			if attached[k] {
				return ctlErr(syscall.EEXIST, "%s: already attached to this network", cmd.line)
			}
			ports++
			attached[k] = true
			for w := range waiting {
				if w.kind == k.kind && w.name == k.name {
					delete(waiting, w) // replaced (see applyCtl)
					break
				}
			}
			if ports > maxPorts {
				return ctlErr(syscall.EBUSY, "%s: the network has maxports (%d) ports", cmd.line, maxPorts)
			}
		case cmd.detach != nil:
			if k, err := cmd.detach.pick(slices.Collect(maps.Keys(attached)), cmd.line); err == nil {
				delete(attached, k)
				ports--
			} else if k, ok := cmd.detach.pickWaiting(slices.Collect(maps.Keys(waiting))); ok {
				delete(waiting, k)
			} else {
				return err
			}
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
