// SPDX-License-Identifier: BSD-3-Clause

// Package sdnotify tells a service manager about the daemon's state with the
// sd_notify(3) protocol: one datagram of NAME=VALUE lines sent to the unix
// socket named by $NOTIFY_SOCKET.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Notify sends state (such as "READY=1" or "STOPPING=1") to the service
// manager. It does nothing when NOTIFY_SOCKET is unset: the daemon was not
// started by one.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	switch {
	case name[0] == '@': // an abstract socket
		name = "\x00" + name[1:]
	case name[0] != '/':
		return fmt.Errorf("NOTIFY_SOCKET=%s: only unix sockets are supported", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.TrimSpace(state) + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
