// SPDX-License-Identifier: BSD-3-Clause

// Package netcore is the core of mnet without any protocol in it: the
// registry of protocol families, the tree of directories and files that
// each family exposes, and a few helpers for text files. It imports the
// standard library only; families live in their own packages (netcore/ipn,
// netcore/inet) and the filesystem layer (package fs) turns file
// operations into calls on the tree, knowing no family.
//
// # The registry
//
// A family registers a constructor from its package's init with Register,
// the way a kernel protocol calls sock_register:
//
//	func init() { netcore.Register("inet", newInetFamily) }
//
// New builds one instance of every registered family (a Core); the binary
// chooses the families it serves by importing their packages. The root of
// the mount shows README, families and one directory per family. The
// README is assembled from what each family contributes (Readmer), so
// adding a family edits nothing here.
//
// # Flags and limits
//
// A mount flag that a family or link kind reads (Env.Flags) is a Flag it
// registers from its init (RegisterFlag). What every caller shares is
// bounded per uid and in all by one Quota per Core (Env.Quota): netcore
// defines the resources of every family (Sockets, Queued), and a family
// registers its own, which brings their mount flags:
//
//	var Networks = netcore.RegisterResource(netcore.ResourceSpec{
//		Name: "networks", Owner: "ipn", PerUid: 256, Global: 4096, ...})
//
//	if err := payer.Take(Networks, 1); err != nil { // ENOSPC past a limit
//
// So cmd/mnet builds flags, mount options, help and Limits (ParseLimits)
// from the registry and names no family's limit.
//
// # The tree
//
// Every name under the mount is a Node: a Dir (Lookup, List) or a File
// (Open, which returns a Handle: Read, Write, Close). A Node's ID is its
// inode number: stable while the node lives and never reused. Calls carry
// the caller's Cred (uid, gid, pid, supplementary groups, and on demand
// its effective capabilities), against which a family checks its rights;
// Attr returns what that caller sees. uid 0 is no exception by itself:
// what overrides a mode or an ownership is a capability, as for any file
// (perm.go: Permitted, MayChmod, MayChown), and so is privilege over the
// system (HasCap).
// Read and Write block until done, until their context is cancelled (the
// caller got a signal: EINTR) or, with nonblock, return EAGAIN.
//
// # Optional interfaces
//
// What only some nodes do is an interface of its own, tested for by the
// filesystem layer:
//
//	Mkdirer   a Dir whose children mkdir(2) creates (ipn networks)
//	Rmdirer   a Dir whose children rmdir(2) removes
//	Owned     a Node whose mode and owner chmod(2) and chown(2) change
//	Accesser  a Node that answers access(2) itself (default: Attr's mode)
//	Streamer  a Handle that is a stream with no file position (sockets)
//	Poller    a Handle whose readiness poll(2) and epoll ask (default: always ready)
//	Readmer   a Family that contributes lines to the root README
//
// # Errors
//
// Methods return syscall.Errno values (or errors wrapping one); the
// filesystem layer passes the errno to the caller and logs anything else
// as a bug (EIO).
//
// # Locks
//
// The filesystem layer calls into the tree holding no lock of its own, and
// calls arrive concurrently from many FUSE requests. netcore's registry
// locks are taken by registration, New and the readers of flags and
// limits, never for a packet. A family
// orders its own locks from the family down to its objects (in ipn: the
// family's save lock, then the family, then a network, then a port's queue
// or a capture) and never calls out (system calls to devices, sockets)
// while holding a network's lock.
package netcore
