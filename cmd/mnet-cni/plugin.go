// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// errCheckFailed: CHECK found the attachment other than ADD left it.
const errCheckFailed uint = 103

// ADD: a TAP named CNI_IFNAME, made by mnet inside the container's
// namespace and attached to the network, then its MAC, MTU and addresses.
func cmdAdd(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := c.supported(); err != nil {
		return err
	}
	netns, err := openNetns(args.Netns)
	if err != nil {
		return err
	}
	defer netns.Close()
	m := mnetMount{dir: c.Mount, network: c.Network}
	if err := m.check(); err != nil {
		return err
	}
	if err := m.ensureNetwork(c.mode, c.Persist); err != nil {
		return err
	}
	if err := c.fitsNetwork(m); err != nil {
		return err
	}

	var ctl *ctlFile
	attached := false
	var iface *current.Interface
	err = netns.Do(func(ns.NetNS) error {
		if _, err := netlinksafe.LinkByName(args.IfName); err == nil {
			return nameTaken(args.IfName)
		} else if !isNotFound(err) {
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("mnet: looking up %s: %v", args.IfName, err), "")
		}
		// Opened on this thread, in the container's namespace: the
		// mount makes the TAP there, whatever thread writes.
		f, err := m.openCtl()
		if err != nil {
			return m.fileError("opening the ctl of network", err)
		}
		ctl = f
		if err := ctl.do("tap", args.IfName); err != nil {
			return m.ctlError("tap", args.IfName, err)
		}
		attached = true
		// Its VLAN before it is up: no frame of it reaches VLAN 1.
		if c.vlan != 0 {
			if err := ctl.do("vlan", args.IfName+" "+strconv.Itoa(c.vlan)); err != nil {
				return m.ctlError("vlan", args.IfName, err)
			}
		}
		iface, err = setUp(args.IfName, args.Netns, c)
		return err
	})
	if ctl != nil {
		defer ctl.Close()
	}
	// undo detaches the TAP, which mnet then deletes; an ADD that fails
	// leaves nothing behind.
	undo := func() {
		if attached {
			ctl.do("detach", args.IfName)
		}
	}
	if err != nil {
		undo()
		return err
	}

	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, Interfaces: []*current.Interface{iface}, DNS: c.DNS}
	if c.IPAM.Type != "" {
		r, err := ipam.ExecAdd(c.IPAM.Type, args.StdinData)
		if err != nil {
			undo()
			return err
		}
		ipamResult, err := current.NewResultFromResult(r)
		if err == nil && len(ipamResult.IPs) == 0 {
			err = fmt.Errorf("IPAM plugin %s gave no address", c.IPAM.Type)
		}
		if err == nil {
			result.IPs = ipamResult.IPs
			for _, ipc := range result.IPs {
				ipc.Interface = current.Int(0)
			}
			result.Routes = ipamResult.Routes
			if !ipamResult.DNS.IsEmpty() {
				result.DNS = ipamResult.DNS
			}
			err = netns.Do(func(ns.NetNS) error { return ipam.ConfigureIface(args.IfName, result) })
		}
		if err != nil {
			ipam.ExecDel(c.IPAM.Type, args.StdinData)
			undo()
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("mnet: addresses for %s: %v", args.IfName, err), "")
		}
	}
	return types.PrintResult(result, c.CNIVersion)
}

// setUp gives the attached TAP the configured MAC and MTU and brings it
// up; it runs in the container's namespace.
func setUp(ifname, sandbox string, c *netConf) (*current.Interface, error) {
	fail := func(what string, err error) error {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("mnet: %s %s: %v", what, ifname, err), "")
	}
	l, err := netlinksafe.LinkByName(ifname)
	if err != nil {
		return nil, fail("looking up the TAP", err)
	}
	if c.mac != nil {
		if err := netlink.LinkSetHardwareAddr(l, c.mac); err != nil {
			return nil, fail("setting the MAC of", err)
		}
	}
	if c.MTU != 0 {
		if err := netlink.LinkSetMTU(l, c.MTU); err != nil {
			return nil, fail("setting the MTU of", err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fail("bringing up", err)
	}
	if l, err = netlinksafe.LinkByName(ifname); err != nil {
		return nil, fail("looking up the TAP", err)
	}
	return &current.Interface{Name: ifname, Mac: l.Attrs().HardwareAddr.String(), Mtu: l.Attrs().MTU, Sandbox: sandbox}, nil
}

// DEL: detach (mnet deletes the TAP it made) and release the addresses.
// Whatever is gone already (the namespace, the interface, the network,
// the mount) is not an error.
func cmdDel(args *skel.CmdArgs) error {
	// DEL undoes what a refused ADD began too: unsupported fields are no
	// reason to refuse it.
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	m := mnetMount{dir: c.Mount, network: c.Network}
	if args.Netns != "" {
		if netns, err := ns.GetNS(args.Netns); err == nil {
			err = netns.Do(func(ns.NetNS) error { return detach(m, args.IfName) })
			netns.Close()
			if err != nil {
				return err
			}
		}
		// A namespace that is gone took the TAP with it, and mnet
		// detached the port when its TAP went.
	}
	if c.IPAM.Type != "" {
		return ipam.ExecDel(c.IPAM.Type, args.StdinData)
	}
	return nil
}

// detach runs in the container's namespace: it detaches the TAP ifname
// from the network (mnet deletes it) and deletes it if it is still there.
func detach(m mnetMount, ifname string) error {
	l, err := netlinksafe.LinkByName(ifname)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("mnet: looking up %s: %v", ifname, err), "")
	}
	if !isTap(l) {
		return nil // not an interface this plugin made
	}
	mounted := m.check() == nil
	if mounted {
		ctl, err := m.openCtl()
		switch {
		case errors.Is(err, os.ErrNotExist):
			// The network is gone, and with it its attachments.
		case err != nil:
			return m.fileError("opening the ctl of network", err)
		default:
			err = ctl.do("detach", ifname)
			ctl.Close()
			if err != nil && !errors.Is(err, unix.ENODEV) {
				return m.ctlError("detach", ifname, err)
			}
			if errors.Is(err, unix.ENODEV) {
				// Not attached to this network: not this
				// plugin's to delete.
				return nil
			}
		}
	}
	// Left over only where mnet did not delete it: the mount was
	// stopped with the network persistent (its TAPs kept), or mnet did
	// not make it.
	if _, err := netlinksafe.LinkByName(ifname); err == nil {
		if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("mnet: deleting %s: %v", ifname, err), "")
		}
	}
	return nil
}

// CHECK: the interface is there as ADD left it, attached to the network,
// with its addresses and routes.
func cmdCheck(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := c.supported(); err != nil {
		return err
	}
	prev, err := c.prevResult()
	if err != nil {
		return err
	}
	netns, err := openNetns(args.Netns)
	if err != nil {
		return err
	}
	defer netns.Close()
	m := mnetMount{dir: c.Mount, network: c.Network}
	if err := m.check(); err != nil {
		return err
	}
	checkFailed := func(format string, a ...any) error {
		return types.NewError(errCheckFailed, "mnet: "+fmt.Sprintf(format, a...), "")
	}

	var want *current.Interface
	for _, i := range prev.Interfaces {
		if i.Name == args.IfName && i.Sandbox == args.Netns {
			want = i
		}
	}
	if want == nil {
		return checkFailed("prevResult lists no interface %s in %s", args.IfName, args.Netns)
	}
	if _, err := os.Stat(m.netDir()); err != nil {
		return checkFailed("network %q: %v", c.Network, errnoText(err))
	}
	lines := m.ctlLines()
	if !slices.Contains(lines, "tap "+args.IfName) {
		return checkFailed("network %q has no attachment tap %s (its ctl)", c.Network, args.IfName)
	}
	if ok, err := m.portNamed(args.IfName); err != nil || !ok {
		return checkFailed("network %q has no tap port %s (its ports)", c.Network, args.IfName)
	}
	// VLAN 1 is the default, which ctl shows by no line. Like the tap
	// line, the vlan line names the interface, not its namespace.
	if c.vlan > 1 && !slices.Contains(lines, fmt.Sprintf("vlan %s %d", args.IfName, c.vlan)) {
		return checkFailed("network %q does not put %s on VLAN %d (its ctl)", c.Network, args.IfName, c.vlan)
	}

	var ours []*current.IPConfig
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(prev.Interfaces) &&
			prev.Interfaces[*ipc.Interface] == want {
			ours = append(ours, ipc)
		}
	}
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(args.IfName)
		if err != nil {
			return checkFailed("no interface %s in %s: %v", args.IfName, args.Netns, err)
		}
		a := l.Attrs()
		switch {
		case !isTap(l):
			return checkFailed("%s is a %s, not the TAP mnet made", args.IfName, l.Type())
		case want.Mac != "" && !sameMAC(a.HardwareAddr, want.Mac):
			return checkFailed("%s has MAC %s, ADD gave it %s", args.IfName, a.HardwareAddr, want.Mac)
		case c.MTU != 0 && a.MTU != c.MTU:
			return checkFailed("%s has MTU %d, the configuration says %d", args.IfName, a.MTU, c.MTU)
		case a.Flags&net.FlagUp == 0:
			return checkFailed("%s is down", args.IfName)
		case a.RawFlags&unix.IFF_LOWER_UP == 0:
			// A TAP has carrier only while a process holds it:
			// without, mnet let it go.
			return checkFailed("%s has no carrier: no process (mnet) holds the TAP", args.IfName)
		}
		if err := ip.ValidateExpectedInterfaceIPs(args.IfName, ours); err != nil {
			return checkFailed("addresses of %s: %v", args.IfName, err)
		}
		if err := ip.ValidateExpectedRoute(prev.Routes); err != nil {
			return checkFailed("routes of %s: %v", args.IfName, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.IPAM.Type != "" {
		return ipam.ExecCheck(c.IPAM.Type, args.StdinData)
	}
	return nil
}

// STATUS (CNI 1.1): ready while mnet is mounted, and the IPAM plugin is.
func cmdStatus(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	m := mnetMount{dir: c.Mount, network: c.Network}
	if err := m.check(); err != nil {
		var e *types.Error
		errors.As(err, &e)
		return types.NewError(types.ErrPluginNotAvailable, e.Msg, e.Details)
	}
	if c.IPAM.Type != "" {
		return ipam.ExecStatus(c.IPAM.Type, args.StdinData)
	}
	return nil
}

// GC (CNI 1.1): mnet detaches a TAP by itself when its namespace goes, so
// only the IPAM plugin has leftovers to collect.
func cmdGC(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if c.IPAM.Type != "" {
		return invoke.DelegateGC(context.TODO(), c.IPAM.Type, args.StdinData, nil)
	}
	return nil
}

// supported checks, for ADD and CHECK, what DEL does not need: "vlan",
// a VLAN ID 1..4094 (or null: none).
func (c *netConf) supported() error {
	if len(c.VLAN) == 0 || string(c.VLAN) == "null" {
		return nil
	}
	var vid int
	if err := json.Unmarshal(c.VLAN, &vid); err != nil || vid < 1 || vid > 4094 {
		return invalidConf("vlan %s: want a VLAN ID 1..4094", c.VLAN)
	}
	c.vlan = vid
	return nil
}

// fitsNetwork refuses an MTU whose frames the network would drop.
func (c *netConf) fitsNetwork(m mnetMount) error {
	if c.MTU == 0 {
		return nil
	}
	netMTU, err := strconv.Atoi(ctlValue(m.ctlLines(), "mtu"))
	if err != nil {
		return nil // unreadable: the daemon's checks stand
	}
	if c.MTU+ethHeaderLen > netMTU {
		return invalidConf("mtu %d: network %q carries frames of at most %d bytes (its mtu), so interfaces of MTU %d at most",
			c.MTU, c.Network, netMTU, netMTU-ethHeaderLen)
	}
	return nil
}

// openNetns opens CNI_NETNS, with the spec's codes for a namespace that
// does not exist (3) and for a path that is not one (4).
func openNetns(path string) (ns.NetNS, error) {
	n, err := ns.GetNS(path)
	if err == nil {
		return n, nil
	}
	var notExist ns.NSPathNotExistErr
	if errors.As(err, &notExist) {
		return nil, types.NewError(types.ErrUnknownContainer, fmt.Sprintf("mnet: network namespace %s does not exist", path), "")
	}
	return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("mnet: CNI_NETNS %s: %v", path, err), "")
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

func isTap(l netlink.Link) bool {
	t, ok := l.(*netlink.Tuntap)
	return ok && t.Mode == netlink.TUNTAP_MODE_TAP
}

func sameMAC(hw net.HardwareAddr, s string) bool {
	want, err := net.ParseMAC(s)
	return err == nil && slices.Equal(hw, want)
}
