// SPDX-License-Identifier: BSD-3-Clause

// Command mnet-cni is a CNI plugin of type mnet: it puts a container's
// interface on an mnet IPN network. Installed as /usr/lib/cni/mnet, it is
// run by container runtimes (podman's CNI backend, containerd, cnitool)
// with the CNI_* variables and the network configuration on standard
// input; mnet-cni(8) describes it.
//
// It talks to the daemon only through the mount, as any program may: the
// mount acts in the namespace of the thread that opened a network's ctl,
// so ctl opened from inside the container's namespace makes the TAP there.
package main

import (
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		Status: cmdStatus,
		GC:     cmdGC,
	}, version.All, about())
}

// about is what the plugin prints when run without CNI_COMMAND.
func about() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v = "revision " + s.Value
			}
		}
	}
	return "mnet CNI plugin " + v + ": puts a container's interface on an mnet network; see mnet-cni(8)"
}
