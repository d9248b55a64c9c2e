// SPDX-License-Identifier: BSD-3-Clause

// Package ipn is the ipn family: IPN (Inter Process Networking) networks
// at ipn/NAME, buses of ports with a delivery policy (hub or learning
// switch), rights from the directory's mode (r receive, w send, x manage),
// counters and a live pcap capture.
//
// A port is either a file port, one per open of ipn/NAME/data or
// ipn/NAME/stream (the same port, its bytes in VDE's stream format, many
// frames per call: stream.go), with a bounded receive queue, or a link port (package link): a TAP, a grabbed
// interface or any other registered link kind, attached by its ctl line.
// Links have no queue: the sender writes to them after the network's lock
// is released, and each has a pump goroutine that reads its frames into
// the network. The idle queues of links whose readiness a descriptor
// reports (link.FDPoller: TAPs, grabbed interfaces, VDE clients) are
// watched by one link waiter per network (waiter.go), which forwards what
// an idle link receives on its own thread, like a poll loop, and hands a
// busy queue back to its pump. Frames travel in the format of package
// vnet (a virtio-net header, then the Ethernet frame); links that take offloads
// (link.CapGSO) get 64 KiB segments as they came, everything else gets
// them cut into wire-size frames. Ports belong to 802.1Q VLANs
// (vlan.go): a network where some port has a VLAN setting classifies each
// frame where it enters and delivers it only within its VLAN, tagged or
// not per receiver; one where none has pays a flag test.
//
// Locks, outermost first: ipnFamily.persistMu (from the per-uid check of
// "persist on" to its apply), ipnFamily.saveMu (one state file write at a
// time), ipnFamily.mu (the networks and the claims), Network.mu (ports,
// settings, routing; held while a packet is delivered so that order and
// the lossless room check are exact), then Port.mu (a receive queue) or a
// capture's lock. The notifier of lossless senders and the claims are
// taken with no network lock held, and no system call on a link is made
// under Network.mu. Network.svcMu orders the starts and stops of a
// network's services (package link); it is taken with no other lock held
// and held while a service starts or stops, so a service may take the
// network's lock (to join or leave ports) but never svcMu. A link queue's
// rmu (held while one of its frames is read and sent, by its pump or the
// waiter) comes before Network.mu; the link waiter's mu is innermost, held only to look up,
// arm or remove a queue. A stream file's rmu (its reads) comes before its
// port's queue lock; its write lock is a channel, waited for
// interruptibly, held while the write delivers (Network.mu inside it).
//
// Extensions (package link) are made with the network and closed with
// it. Their ctl lines are parsed with the others and applied after the
// network's lock is released, since applying one may join or leave a port;
// CtlLines, Entries, Busy and Save are called with Network.mu held (and
// Save also under ipnFamily.mu), so an extension's own locks come after
// the network's and it never takes the network's lock while holding one
// of its own.
package ipn
