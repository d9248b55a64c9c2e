// SPDX-License-Identifier: BSD-3-Clause

package iphost_test

import (
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// A short ARP packet, or one claiming longer addresses than it holds, is
// dropped and counted, and the host goes on answering ARP: the decoder
// must check the sizes the packet gives against its length.
func TestMalformedARPDropped(t *testing.T) {
	e := newEnv(t)
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, body := range [][]byte{
		[]byte("0000\xff\x0000"), // 8 bytes, hardware address size 255
		append([]byte{0, 1, 8, 0, 16, 16, 0, 1}, make([]byte, 38)...), // sizes past the end
		{0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0},                             // cut short (a frame need not be padded)
	} {
		frame := append(append(append([]byte(nil), bcast...), peerMAC...), 0x08, 0x06)
		if !e.far.InjectFrame(append(frame, body...)) {
			t.Fatal("inject failed")
		}
	}
	e.inject(eth(layers.EthernetTypeARP, bcast),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: peerMAC, SourceProtAddress: peerV4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: hostV4.AsSlice()})
	e.next(func(p gopacket.Packet) bool {
		arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return arp != nil && arp.Operation == layers.ARPReply
	})
	if s := statusOf(t, e); !strings.Contains(s, "\nrx-drops 3\n") {
		t.Errorf("host file:\n%s\nwant rx-drops 3", s)
	}
}
