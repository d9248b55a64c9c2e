// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func codeOf(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Defaults: network is the name, the mount /mnt/mnet, a network made
// private (0700); fields given are kept.
func TestLoadConfDefaults(t *testing.T) {
	c, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"lab","type":"mnet"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "lab" || c.Mount != "/mnt/mnet" || c.mode != 0o700 || c.MTU != 0 || c.mac != nil {
		t.Errorf("defaults: network %q mount %q mode %o mtu %d mac %v", c.Network, c.Mount, c.mode, c.MTU, c.mac)
	}
	c, err = loadConf([]byte(`{"cniVersion":"1.0.0","name":"lab","type":"mnet","network":"other","mount":"/run/mnet/",
		"mode":"0750","mtu":9000,"mac":"02:00:00:00:00:01","runtimeConfig":{"mac":"02:00:00:00:00:02"},"persist":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "other" || c.Mount != "/run/mnet" || c.mode != 0o750 || c.MTU != 9000 || c.mac.String() != "02:00:00:00:00:02" || !c.Persist {
		t.Errorf("given: network %q mount %q mode %o mtu %d mac %v", c.Network, c.Mount, c.mode, c.MTU, c.mac)
	}
}

// Bad configurations are CNI errors with the spec's codes and a message
// naming the field.
func TestLoadConfErrors(t *testing.T) {
	for _, tc := range []struct {
		conf string
		code uint
		msg  string
	}{
		{`{"cniVersion":`, types.ErrDecodingFailure, "cannot parse"},
		{`{"name":"a/b"}`, types.ErrInvalidNetworkConfig, `network "a/b"`},
		{`{"name":"x","network":".hidden"}`, types.ErrInvalidNetworkConfig, `network ".hidden"`},
		{`{"name":"` + strings.Repeat("n", 65) + `"}`, types.ErrInvalidNetworkConfig, "1 to 64"},
		{`{"name":"x","mount":"mnt"}`, types.ErrInvalidNetworkConfig, "absolute path"},
		{`{"name":"x","mode":"rwx"}`, types.ErrInvalidNetworkConfig, `mode "rwx"`},
		{`{"name":"x","mode":"01777"}`, types.ErrInvalidNetworkConfig, `mode "01777"`},
		{`{"name":"x","mtu":67}`, types.ErrInvalidNetworkConfig, "mtu 67"},
		{`{"name":"x","mtu":65522}`, types.ErrInvalidNetworkConfig, "mtu 65522"},
		{`{"name":"x","mac":"zz"}`, types.ErrInvalidNetworkConfig, `mac "zz"`},
		{`{"name":"x","mac":"01:00:5e:00:00:01"}`, types.ErrInvalidNetworkConfig, "multicast"},
		{`{"name":"x","runtimeConfig":{"mac":"00:11:22:33:44:55:66:77"}}`, types.ErrInvalidNetworkConfig, "mac"},
	} {
		_, err := loadConf([]byte(tc.conf))
		if code := codeOf(err); code != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("loadConf(%s): %v (code %d), want code %d and %q", tc.conf, err, code, tc.code, tc.msg)
		}
	}
}

// "vlan" is a VLAN ID 1..4094 for ADD and CHECK (a bad one is an invalid
// configuration), but a DEL of any configuration is parsed: it cleans up
// after a refused ADD.
func TestVLANConf(t *testing.T) {
	for _, tc := range []struct {
		vlan string
		want int
		code uint
	}{
		{"10", 10, 0}, {"4094", 4094, 0}, {"null", 0, 0},
		{"0", 0, types.ErrInvalidNetworkConfig}, {"4095", 0, types.ErrInvalidNetworkConfig},
		{`"10"`, 0, types.ErrInvalidNetworkConfig}, {"1.5", 0, types.ErrInvalidNetworkConfig},
	} {
		c, err := loadConf([]byte(`{"cniVersion":"1.0.0","name":"lab","type":"mnet","vlan":` + tc.vlan + `}`))
		if err != nil {
			t.Fatalf("loadConf with vlan %s (as DEL parses it): %v", tc.vlan, err)
		}
		err = c.supported()
		if codeOf(err) != tc.code || c.vlan != tc.want || tc.code != 0 && !strings.Contains(err.Error(), "vlan") {
			t.Errorf("vlan %s: %v (code %d), vlan %d; want code %d, vlan %d", tc.vlan, err, codeOf(err), c.vlan, tc.code, tc.want)
		}
	}
}

// The example configuration installed with the documentation is a
// conflist libcni reads, and its plugin's configuration, as libcni hands
// it to the plugin, is valid.
func TestExampleConflist(t *testing.T) {
	list, err := libcni.ConfListFromFile("../../dist/cni/mnet-lab.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "mnet" {
		t.Fatalf("example: %d plugins, first of type %q", len(list.Plugins), list.Plugins[0].Network.Type)
	}
	conf, err := libcni.InjectConf(list.Plugins[0], map[string]any{"name": list.Name, "cniVersion": list.CNIVersion})
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadConf(conf.Bytes)
	if err != nil {
		t.Fatalf("the example's plugin configuration: %v", err)
	}
	if err := c.supported(); err != nil || c.Network != "lab" || c.IPAM.Type != "host-local" {
		t.Errorf("example: %v, network %q, ipam %q", err, c.Network, c.IPAM.Type)
	}
}
