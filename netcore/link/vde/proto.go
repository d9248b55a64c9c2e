// SPDX-License-Identifier: BSD-3-Clause

package vde

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// The VDE2 control protocol, as libvdeplug (vde2 2.3 and vdeplug4) speaks
// it to a switch: on the switch's SOCK_STREAM ctl socket the client sends
// one request_v3,
//
//	u32 magic      0xfeedface
//	u32 version    3
//	u32 type       REQ_NEW_CONTROL (0) | requested port << 8 (0: any)
//	sockaddr_un    AF_UNIX and the path of the client's bound SOCK_DGRAM socket
//	description    free text, no terminating NUL, to the end of the message
//
// in host byte order, and the switch answers with a sockaddr_un naming its
// datagram socket for the new port. Frames then go one per datagram between
// the two datagram sockets, and the port lives as long as the stream.

const (
	reqMagic      = 0xfeedface
	reqVersion    = 3
	reqNewControl = 0

	sunPathLen  = 108
	sockaddrLen = 2 + sunPathLen // sizeof(struct sockaddr_un)
	// reqFixedLen is the request up to its description.
	reqFixedLen = 12 + sockaddrLen
	// maxReqLen bounds what is read as one request: the fixed part and a
	// description of up to 1 KiB (libvdeplug's are far shorter).
	maxReqLen = reqFixedLen + 1024
	// maxNameLen bounds the NAME column made from a description.
	maxNameLen = 64
)

// request is a parsed request_v3.
type request struct {
	port  int    // requested port number; 0: any
	path  string // the client's datagram socket
	descr string // as sent
}

var errShort = errors.New("short request")

// parseRequest reads a request_v3. errShort means more bytes may complete it.
func parseRequest(b []byte) (request, error) {
	var r request
	if len(b) < reqFixedLen {
		return r, errShort
	}
	e := binary.NativeEndian
	if m := e.Uint32(b[0:]); m != reqMagic {
		return r, fmt.Errorf("bad magic %#x (a VDE 1 client, or not VDE)", m)
	}
	if v := e.Uint32(b[4:]); v != reqVersion {
		return r, fmt.Errorf("request version %d, want %d", v, reqVersion)
	}
	typ := e.Uint32(b[8:])
	if typ&0xff != reqNewControl {
		return r, fmt.Errorf("request type %d, want REQ_NEW_CONTROL", typ&0xff)
	}
	r.port = int(typ >> 8)
	sa := b[12 : 12+sockaddrLen]
	if fam := e.Uint16(sa); fam != syscall.AF_UNIX {
		return r, fmt.Errorf("data socket address family %d, want AF_UNIX", fam)
	}
	path := sa[2:]
	end := 0
	for end < len(path) && path[end] != 0 {
		end++
	}
	if end == 0 {
		return r, errors.New("no data socket path")
	}
	if end == len(path) {
		return r, errors.New("data socket path not terminated")
	}
	r.path = string(path[:end])
	if r.path[0] != '/' {
		return r, fmt.Errorf("data socket path %q not absolute", r.path)
	}
	r.descr = string(b[reqFixedLen:])
	return r, nil
}

// sockaddr encodes path as a struct sockaddr_un, the switch's answer.
func sockaddr(path string) ([]byte, error) {
	if len(path) >= sunPathLen {
		return nil, fmt.Errorf("socket path %q too long", path)
	}
	b := make([]byte, sockaddrLen)
	binary.NativeEndian.PutUint16(b, syscall.AF_UNIX)
	copy(b[2:], path)
	return b, nil
}

// portName makes a description fit the NAME column of ports: printable
// ASCII only, runs of anything else (spaces included) become one '_', at
// most maxNameLen bytes; nothing left is "-".
func portName(descr string) string {
	var b strings.Builder
	gap := false
	for i := 0; i < len(descr); i++ {
		c := descr[i]
		if c > ' ' && c < 0x7f {
			if gap && b.Len() > 0 {
				b.WriteByte('_')
			}
			gap = false
			b.WriteByte(c)
		} else {
			gap = true
		}
		if b.Len() >= maxNameLen {
			break
		}
	}
	s := b.String()
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	if s == "" {
		return "-"
	}
	return s
}
