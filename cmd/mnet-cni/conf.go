// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

const (
	defaultMount = "/mnt/mnet"
	// defaultMode is the mode of a network the plugin creates: the
	// runtime's alone, since pcap and data would otherwise show every
	// container's traffic to any user (mnet(7), Rights). "mode" widens it.
	defaultMode = 0o700

	// The largest MTU a TAP takes: an Ethernet frame of it (the header
	// added) still fits the largest IPN packet.
	minMTU = 68
	maxMTU = 65535 - ethHeaderLen

	ethHeaderLen = 14
)

// netConf is the plugin's network configuration: the CNI fields and mnet's.
type netConf struct {
	types.NetConf

	// Network is the IPN network, ipn/NETWORK under Mount; default the
	// configuration's name.
	Network string `json:"network,omitempty"`
	// Mount is where mnet is mounted.
	Mount string `json:"mount,omitempty"`
	// MAC and MTU of the container's interface; unset, the kernel's
	// random MAC and mnet's MTU for a TAP.
	MAC string `json:"mac,omitempty"`
	MTU int    `json:"mtu,omitempty"`
	// Mode of the network if the plugin creates it, octal ("0750").
	Mode string `json:"mode,omitempty"`
	// Persist makes a network ADD creates persistent: its settings and
	// the containers' TAPs (in their named namespaces) outlive a daemon
	// restart.
	Persist bool `json:"persist,omitempty"`
	// VLAN makes the interface an access port of that VLAN (1..4094),
	// checked by ADD and CHECK (supported); DEL does not read it.
	VLAN json.RawMessage `json:"vlan,omitempty"`

	// RuntimeConfig: the runtime's MAC (capability "mac") wins over MAC.
	RuntimeConfig struct {
		MAC string `json:"mac,omitempty"`
	} `json:"runtimeConfig"`

	// Parsed from the fields above by loadConf, vlan by supported (0:
	// none given).
	vlan int
	mode uint32
	mac  net.HardwareAddr
}

// loadConf parses and checks a configuration; its errors are CNI errors
// with the spec's codes.
func loadConf(data []byte) (*netConf, error) {
	c := &netConf{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "mnet: cannot parse the network configuration", err.Error())
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.NetConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "mnet: cannot parse prevResult", err.Error())
		}
	}
	if c.Network == "" {
		c.Network = c.Name
	}
	if err := checkNetworkName(c.Network); err != nil {
		return nil, invalidConf("network %q: %v", c.Network, err)
	}
	if c.Mount == "" {
		c.Mount = defaultMount
	}
	if !filepath.IsAbs(c.Mount) {
		return nil, invalidConf("mount %q: want an absolute path", c.Mount)
	}
	c.Mount = filepath.Clean(c.Mount)
	c.mode = defaultMode
	if c.Mode != "" {
		m, err := strconv.ParseUint(c.Mode, 8, 32)
		if err != nil || m > 0o777 {
			return nil, invalidConf("mode %q: want octal permission bits such as \"0750\"", c.Mode)
		}
		c.mode = uint32(m)
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > maxMTU) {
		return nil, invalidConf("mtu %d: want %d..%d", c.MTU, minMTU, maxMTU)
	}
	mac := c.MAC
	if c.RuntimeConfig.MAC != "" {
		mac = c.RuntimeConfig.MAC
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return nil, invalidConf("mac %q: want an Ethernet address such as 02:00:00:00:00:01", mac)
		}
		if hw[0]&1 != 0 {
			return nil, invalidConf("mac %q: a multicast address cannot be an interface's", mac)
		}
		c.mac = hw
	}
	return c, nil
}

// checkNetworkName is SPEC's rule for ipn names, checked here so that a
// bad name is a configuration error, not an errno from the mount.
func checkNetworkName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("want 1 to 64 characters")
	}
	if name[0] == '.' {
		return fmt.Errorf("must not start with '.'")
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("only letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

func invalidConf(format string, a ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "mnet: "+fmt.Sprintf(format, a...), "")
}

// prevResult is CHECK's result of the ADD, in the current version.
func (c *netConf) prevResult() (*current.Result, error) {
	if c.PrevResult == nil {
		return nil, invalidConf("CHECK needs prevResult, the result of ADD")
	}
	r, err := current.NewResultFromResult(c.PrevResult)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "mnet: cannot convert prevResult", err.Error())
	}
	return r, nil
}
