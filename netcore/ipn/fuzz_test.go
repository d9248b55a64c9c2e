// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Whatever is written to ctl, the write ends with success or an errno the
// spec names, never a panic, and the settings stay within their limits.
func FuzzCtl(f *testing.F) {
	for _, seed := range []string{
		"policy switch\n", "mtu 1500\nqlen 8\n", "lossless on", "descr hello world",
		"maxports 0", "mtu -1", "qlen 99999999999999999999", "tap eth0", "persist maybe",
		"\n\n#comment\n", "policy  hub", "descr \x00\xff", "mtu 64\nmtu 65535\nbogus",
		"impair all delay 1ms loss 50% seed 1\nimpair all off", "impair #1 dup 100%",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	ipn, _ := c.Root().Lookup(rootCred, "ipn")
	node, err := ipn.(netcore.Mkdirer).Mkdir(rootCred, "fuzz", 0777)
	if err != nil {
		f.Fatal(err)
	}
	n := node.(*netDir).n
	f.Fuzz(func(t *testing.T, text string, asRoot bool) {
		cred := ownerCred
		// Root would attach real interfaces: the fuzzer must not create
		// TAPs on the machine, so those lines run as the owner (EPERM).
		if asRoot && !strings.Contains(text, "tap") && !strings.Contains(text, "grab") {
			cred = rootCred
		}
		err := n.applyCtl(cred, netns.Self(), text)
		var errno syscall.Errno
		if err != nil && (!errors.As(err, &errno) ||
			(errno != syscall.EINVAL && errno != syscall.EPERM && errno != syscall.ENODEV)) {
			t.Fatalf("ctl %q: %v", text, err)
		}
		n.mu.Lock()
		s := n.set
		n.mu.Unlock()
		if err := checkSettings(s); err != nil {
			t.Fatalf("ctl %q left bad settings %+v: %v", text, s, err)
		}
		if s.Persist {
			n.applyCtl(rootCred, netns.Self(), "persist off") // no state file here; keep it off
		}
	})
}

// Mkdir accepts exactly the names the spec allows.
func FuzzNetName(f *testing.F) {
	for _, seed := range []string{"lab", ".x", "a b", "", "-", "x/y", "ü", "Lab-1.t_x"} {
		f.Add(seed)
	}
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	ipnNode, _ := c.Root().Lookup(rootCred, "ipn")
	ipn := ipnNode.(netcore.Dir)
	f.Fuzz(func(t *testing.T, name string) {
		_, err := ipn.(netcore.Mkdirer).Mkdir(rootCred, name, 0755)
		switch {
		case netcore.ValidName(name) && err != nil && !errors.Is(err, syscall.EEXIST):
			t.Fatalf("valid name %q refused: %v", name, err)
		case !netcore.ValidName(name) && !errors.Is(err, syscall.EINVAL):
			t.Fatalf("bad name %q: %v, want EINVAL", name, err)
		}
		if err == nil {
			if err := ipn.(netcore.Rmdirer).Rmdir(rootCred, name); err != nil {
				t.Fatalf("rmdir %q: %v", name, err)
			}
		}
	})
}

// FuzzStateFile: any state file. The daemon starts and serves whatever
// it holds (a broken file is moved aside), restores only networks with
// valid names and settings, one per name, and saves at its end a file
// that loads back to the same networks; no panic is contained meanwhile.
func FuzzStateFile(f *testing.F) {
	for _, seed := range []string{
		`{"networks":[{"name":"lab","uid":1000,"gid":1000,"mode":488,"settings":{"policy":"switch","mtu":1500,"qlen":9,"lossless":false,"maxports":1024,"descr":"saved","persist":true},"ifaces":[{"kind":"mem","name":"m1"}]}]}`,
		`{"networks":null}`,
		`{"networks":[{"name":"a","settings":{"policy":"hub","mtu":65535,"qlen":256,"maxports":1024}},{"name":"a","settings":{"policy":"hub","mtu":64,"qlen":1,"maxports":1}}]}`,
		`{"networks":[{"name":".hidden","settings":{"policy":"hub","mtu":1500,"qlen":1,"maxports":1}}]}`,
		`{"networks":[{"name":"x","mode":4294967295,"settings":{"policy":"bogus","mtu":0}}]}`,
		`{"networks":[{"name":"s","settings":{"policy":"hub","mtu":1500,"qlen":8,"maxports":8,"services":{"vde":false,"nope":true}},"ext":{"host":{"addrs":["198.18.0.1/24"]}},"ifaces":[{"kind":"nope"},{}]}]}`,
		`{"networks":[{"name":"v","settings":{"policy":"switch","mtu":1500,"qlen":8,"maxports":8},"ifaces":[{"kind":"mem","name":"m2","vlan":10,"trunk":"20-22,4094"}],"vlans":{"memsvc:3":{"vlan":30,"trunk":"all"},"vde:0":{"vlan":5},"memsvc:4":{"trunk":"x"}}}]}`,
		`{not json`, ``,
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "state.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		var doc stateDoc
		if err := json.Unmarshal(b, &doc); err != nil {
			doc = stateDoc{} // unreadable: nothing is restored
		} else if !onlyMemLinks(doc) {
			// The kinds this test links in attach real interfaces of
			// the machine (tap, grab): not from a fuzzer.
			t.Skip()
		}
		olds, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, o := range olds {
			os.Remove(o)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		panics := netcore.Panics()
		defer func() {
			if netcore.Panics() != panics {
				t.Fatal("a panic was contained")
			}
		}()
		c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), StatePath: path})
		if err != nil {
			t.Fatalf("the daemon did not start: %v", err)
		}
		ipnNode, _ := c.Root().Lookup(rootCred, "ipn")
		ipn := ipnNode.(netcore.Dir)
		valid := map[string]bool{}
		for _, s := range doc.Networks {
			s.Settings.Persist = true
			if netcore.ValidName(s.Name) && checkSettings(s.Settings) == nil {
				valid[s.Name] = true
			}
		}
		restored := ipn.List(rootCred)
		for _, e := range restored {
			n := e.Node.(*netDir).n
			n.mu.Lock()
			set, mode := n.set, n.mode
			n.mu.Unlock()
			if !valid[e.Name] || checkSettings(set) != nil || mode&^0o777 != 0 {
				t.Fatalf("restored %q with settings %+v, mode %#o", e.Name, set, mode)
			}
		}
		if len(restored) != len(valid) {
			t.Fatalf("restored %d networks of %d valid names", len(restored), len(valid))
		}
		if _, err := ipn.(netcore.Mkdirer).Mkdir(rootCred, "fuzz-new", 0o755); err != nil && !errors.Is(err, syscall.EEXIST) {
			t.Fatalf("the daemon does not serve: mkdir: %v", err)
		}
		c.Close()
		if len(restored) == 0 {
			return
		}
		again, err := (&stateFile{path: path}).load()
		if err != nil {
			t.Fatalf("the state file saved does not load: %v", err)
		}
		names := map[string]bool{}
		for _, s := range again {
			names[s.Name] = true
		}
		for _, e := range restored {
			if !names[e.Name] {
				t.Fatalf("network %q not saved back", e.Name)
			}
		}
	})
}

// onlyMemLinks reports whether every attachment doc holds is of a kind
// that is no interface of the machine: mem, or one not registered.
func onlyMemLinks(doc stateDoc) bool {
	for _, s := range doc.Networks {
		for _, raw := range s.Links {
			var head struct {
				Kind string `json:"kind"`
			}
			if json.Unmarshal(raw, &head) == nil && head.Kind != "mem" && link.Lookup(head.Kind) != nil {
				return false
			}
		}
	}
	return true
}

// FuzzDataFrames: any frames written to a network's data files by three
// ports, under the hub or the switch policy, against a model of the
// policy: each write is refused exactly when the spec says (EMSGSIZE
// above the mtu, EINVAL under 14 bytes with switch), and each frame
// reaches exactly the ports the policy names (every other port with hub;
// the port its destination was learned on, or every other port, with
// switch), unchanged. The input is records: a byte whose low bits pick
// the sending port, a length byte, then the frame.
func FuzzDataFrames(f *testing.F) {
	a := mac{2, 0, 0, 0, 0, 0xa}
	b := mac{2, 0, 0, 0, 0, 0xb}
	rec := func(port byte, frame []byte) []byte { return append([]byte{port, byte(len(frame))}, frame...) }
	learned := append(append(rec(0, eth(macBcast, a, "hello")), rec(1, eth(a, b, "to a"))...), rec(0, eth(b, a, "to b"))...)
	f.Add(true, uint16(1500), learned)
	f.Add(false, uint16(1500), learned)
	f.Add(true, uint16(64), append(rec(2, make([]byte, 13)), rec(1, make([]byte, 65))...))
	f.Add(true, uint16(64), append(rec(0, eth(a, a, "self")), rec(0, eth(a, b, "moved"))...))
	f.Add(false, uint16(0), rec(0, []byte{}))
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	f.Fuzz(func(t *testing.T, sw bool, mtu uint16, in []byte) {
		mtu = max(mtu%1600, MinMTU)
		policy := "hub"
		if sw {
			policy = "switch"
		}
		nd := mkNet(t, c, rootCred, "frames", 0o777)
		t.Cleanup(func() {
			if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(rootCred, "frames"); err != nil {
				t.Errorf("rmdir: %v", err)
			}
		})
		if err := ctl(t, nd, rootCred, fmt.Sprintf("policy %s\nmtu %d\n", policy, mtu)); err != nil {
			t.Fatal(err)
		}
		panics := netcore.Panics()
		defer func() {
			if netcore.Panics() != panics {
				t.Fatal("a panic was contained")
			}
		}()
		var ports [3]netcore.Handle
		for i := range ports {
			ports[i] = openData(t, nd, rootCred, syscall.O_RDWR)
		}
		learnt := map[mac]int{}
		for len(in) >= 2 {
			from, size := int(in[0])%len(ports), int(in[1])
			if size > 200 { // room for frames above the mtu
				size = (size - 200) * 64
			}
			frame := in[2:min(2+size, len(in))]
			in = in[2+len(frame):]
			k, err := ports[from].Write(context.Background(), frame, 0, false)
			var want error
			switch {
			case len(frame) > int(mtu):
				want = syscall.EMSGSIZE
			case sw && len(frame) > 0 && len(frame) < ethHeaderLen:
				want = syscall.EINVAL
			}
			if err != want || (err == nil && k != len(frame)) {
				t.Fatalf("write of %d bytes (mtu %d, %s): %d, %v; want %v", len(frame), mtu, policy, k, err, want)
			}
			to := map[int]bool{}
			if err == nil && len(frame) > 0 {
				for i := range ports {
					to[i] = i != from
				}
				if sw {
					var dst, src mac
					copy(dst[:], frame)
					copy(src[:], frame[6:])
					if src[0]&1 == 0 {
						learnt[src] = from
					}
					if p, ok := learnt[dst]; ok && dst[0]&1 == 0 {
						to = map[int]bool{p: p != from}
					}
				}
			}
			for i, h := range ports {
				got, err := recvNow(h, 70000)
				switch {
				case to[i] && (err != nil || !bytes.Equal(got, frame)):
					t.Fatalf("port %d sent %x; port %d read %x, %v", from, frame, i, got, err)
				case !to[i] && !errors.Is(err, syscall.EAGAIN):
					t.Fatalf("port %d sent %x; port %d, not a receiver, read %x, %v", from, frame, i, got, err)
				}
			}
		}
	})
}

// Whatever bytes are written to a stream file, cut into writes anywhere,
// the network gets the frames a reading of the whole stream finds, up to
// the first bad one, which fails a write (EINVAL, or a short count); and
// a stream reader, reading in pieces of any size, gets those frames
// framed, byte for byte. Never a panic.
func FuzzStreamFrames(f *testing.F) {
	seed := framed([]byte("one"), bytes.Repeat([]byte{7}, 300), []byte("three"))
	f.Add(uint16(1500), seed, []byte{1, 5, 200, 3}, []byte{1, 7, 100})
	f.Add(uint16(64), append(append([]byte{}, seed...), 0, 0, 0, 5), []byte{4}, []byte{250})
	f.Add(uint16(100), []byte{0, 101}, []byte{1}, []byte{1})
	f.Add(uint16(1500), []byte{0}, []byte{}, []byte{})
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	f.Fuzz(func(t *testing.T, mtu uint16, in, writes, reads []byte) {
		mtu = max(mtu%1600, MinMTU)
		if len(in) > 1<<16 {
			in = in[:1<<16]
		}
		// The reference: the frames of the whole stream, up to a bad one.
		var want [][]byte
		bad := false
		for i := 0; i+2 <= len(in); {
			size := int(binary.BigEndian.Uint16(in[i:]))
			if size == 0 || size > int(mtu) {
				bad = true
				break
			}
			if i+2+size > len(in) {
				break
			}
			want = append(want, in[i+2:i+2+size])
			i += 2 + size
		}
		nd := mkNet(t, c, rootCred, "streamfz", 0o777)
		t.Cleanup(func() {
			if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(rootCred, "streamfz"); err != nil {
				t.Errorf("rmdir: %v", err)
			}
		})
		if err := ctl(t, nd, rootCred, fmt.Sprintf("mtu %d\nqlen 65536\n", mtu)); err != nil {
			t.Fatal(err)
		}
		panics := netcore.Panics()
		defer func() {
			if netcore.Panics() != panics {
				t.Fatal("a panic was contained")
			}
		}()
		w := openStream(t, nd, rootCred, syscall.O_WRONLY)
		d := openData(t, nd, rootCred, syscall.O_RDONLY)
		r := openStream(t, nd, rootCred, syscall.O_RDONLY)
		failed := false
		for k := 0; len(in) > 0; k++ {
			size := len(in)
			if k < len(writes) {
				size = min(int(writes[k])+1, len(in))
			}
			n, err := w.Write(context.Background(), in[:size], 0, false)
			if err != nil {
				if !errors.Is(err, syscall.EINVAL) || n != 0 {
					t.Fatalf("write: %d, %v; want EINVAL or a count", n, err)
				}
				failed = true
				break
			}
			if n <= 0 || n > size {
				t.Fatalf("write of %d bytes returned %d", size, n)
			}
			if n < size {
				// Short: a bad frame follows; the next write starts with it.
				if n2, err := w.Write(context.Background(), in[n:size], 0, false); !errors.Is(err, syscall.EINVAL) || n2 != 0 {
					t.Fatalf("write starting where a short write stopped: %d, %v; want EINVAL", n2, err)
				}
				failed = true
				break
			}
			in = in[n:]
		}
		if failed != bad {
			t.Fatalf("writes failed %v, the stream has a bad frame %v", failed, bad)
		}
		for i, p := range want {
			got, err := recvNow(d, 70000)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("data packet %d = %x, %v; want %x", i, got, err, p)
			}
		}
		expectEmpty(t, d, "data reader after the frames")
		var got []byte
		for k := 0; ; k++ {
			size := 70000
			if k < len(reads) {
				size = int(reads[k]) + 1
			}
			b, err := recvNow(r, size)
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			if err != nil || len(b) == 0 || len(b) > size {
				t.Fatalf("stream read of %d: %d bytes, %v", size, len(b), err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, framed(want...)) {
			t.Fatalf("stream reader got %x, want %x", got, framed(want...))
		}
	})
}

// Every frame a trunk file port sends reaches exactly the ports the
// 802.1Q model says, in the form it says.
func FuzzVLANFrames(f *testing.F) {
	for _, seed := range [][]byte{
		eth(macBcast, macA, "untagged"),
		tagged(eth(macBcast, macA, "ten"), 10),
		tagged(eth(macBcast, macA, "twenty"), 0xe014),
		tagged(eth(macBcast, macA, "thirty"), 30),
		tagged(eth(macBcast, macA, "prio"), 0x3000),
		tagged(eth(macBcast, macA, "4095"), 4095),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0},
		[]byte("short"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) == 0 {
			return
		}
		c := newTestCore(t, "")
		nd := mkNet(t, c, rootCred, "vlfuzz", 0700)
		from := openData(t, nd, rootCred, syscall.O_RDWR) // access 1, trunk all
		b := openVLAN(t, nd, "10", syscall.O_RDWR)        // access 10
		one := openData(t, nd, rootCred, syscall.O_RDWR)  // access 1
		d := openData(t, nd, rootCred, syscall.O_RDWR)    // access 30, trunk 10,20
		mustCtl(t, nd, "trunk #"+strconv.Itoa(portID(t, from))+" all\nvlan #"+strconv.Itoa(portID(t, d))+" 30\ntrunk #"+
			strconv.Itoa(portID(t, d))+" 10,20\n")
		if _, err := from.Write(context.Background(), frame, 0, false); err != nil {
			t.Fatalf("write: %v", err)
		}
		want := map[string][]byte{}
		drop := false
		var untag []byte
		switch {
		case len(frame) < 14:
			want["one"] = frame // no tag: the access VLAN, and no trunk
		case binary.BigEndian.Uint16(frame[12:]) != etherTypeVLAN:
			want["one"] = frame
		case len(frame) < 18:
			drop = true
		default:
			untag = append(append([]byte(nil), frame[:12]...), frame[16:]...)
			switch vid := binary.BigEndian.Uint16(frame[14:]) & 0xfff; vid {
			case 0, 1: // priority-tagged, or VLAN 1 that from carries tagged
				want["one"] = untag
			case 10:
				want["b"], want["d"] = untag, frame
			case 20:
				want["d"] = frame
			case 30:
				want["d"] = untag
			case 4095:
				drop = true
			}
		}
		for name, h := range map[string]netcore.Handle{"b": b, "one": one, "d": d} {
			got, err := recvNow(h, 70000)
			switch w, ok := want[name]; {
			case !ok && !errors.Is(err, syscall.EAGAIN):
				t.Errorf("%s got %x (%v), want nothing", name, got, err)
			case ok && (err != nil || !bytes.Equal(got, w)):
				t.Errorf("%s got %x (%v), want %x", name, got, err, w)
			}
		}
		if s := statsOf(t, nd); (s["vlan-drops"] == 1) != drop {
			t.Errorf("vlan-drops %d, dropped %v", s["vlan-drops"], drop)
		}
	})
}
