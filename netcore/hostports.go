// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"slices"
	"strconv"
	"sync"
)

// HostPorts is the node cache and the count of open files of a HOST/PORT
// tree (inet's udp/ and tcp/, the udp/ of a network's IP host), where any
// HOST and PORT can be looked up and the listings show those with open
// files. A HOST directory or PORT file keeps its node, and so its inode
// number, while its name is looked up again or open; once the cache holds
// its bound of nodes, making one more first forgets those that have no
// open file. K names a HOST, D is a HOST directory, F a PORT file.
//
// The owner's lock, mu, guards it: LookupPort and ListPorts take it, the
// other methods are called with it held.
type HostPorts[K comparable, D any, F Node] struct {
	mu      sync.Locker
	max     int
	newPort func(dir D, port uint16) F
	nodes   int
	hosts   map[K]*HostEntry[K, D, F]
	opened  map[K]map[uint16]int // HOST -> PORT -> open files
	// Swept, if set, is told how many nodes are left after a sweep.
	Swept func(nodes int)
}

// HostEntry is what a HostPorts keeps of one HOST directory: its name, the
// directory and its PORT files. A directory keeps its entry, and goes on
// serving its PORTs after a sweep forgot it.
type HostEntry[K comparable, D any, F Node] struct {
	key   K
	dir   D
	ports map[uint16]F
}

// Key is the HOST's name.
func (e *HostEntry[K, D, F]) Key() K { return e.key }

// PortFile is what every PORT file of a HostPorts holds; a family's PORT
// file embeds it.
type PortFile[D any] struct {
	id   uint64
	Dir  D      // its HOST directory
	Port uint16 // its PORT
}

// NewPortFile is the PortFile of port in dir, with a node number of its
// own.
func NewPortFile[D any](dir D, port uint16) PortFile[D] {
	return PortFile[D]{id: NewID(), Dir: dir, Port: port}
}

func (f *PortFile[D]) ID() uint64 { return f.id }

// NewHostPorts makes a tree guarded by mu whose cache holds about max
// nodes; newPort makes the file of a PORT in a HOST directory.
func NewHostPorts[K comparable, D any, F Node](mu sync.Locker, max int, newPort func(dir D, port uint16) F) *HostPorts[K, D, F] {
	return &HostPorts[K, D, F]{mu: mu, max: max, newPort: newPort,
		hosts: map[K]*HostEntry[K, D, F]{}, opened: map[K]map[uint16]int{}}
}

// Nodes is how many nodes the cache holds.
func (t *HostPorts[K, D, F]) Nodes() int { return t.nodes }

// Host returns the directory of HOST k, made by mk (given the entry it is
// to keep) if there is none.
func (t *HostPorts[K, D, F]) Host(k K, mk func(e *HostEntry[K, D, F]) D) D {
	if e, ok := t.hosts[k]; ok {
		return e.dir
	}
	t.sweep()
	e := &HostEntry[K, D, F]{key: k, ports: map[uint16]F{}}
	e.dir = mk(e)
	t.hosts[k] = e
	t.nodes++
	return e.dir
}

// port returns the file of port in e's directory, made if there is none.
func (t *HostPorts[K, D, F]) port(e *HostEntry[K, D, F], port uint16) F {
	if f, ok := e.ports[port]; ok {
		return f
	}
	t.sweep()
	f := t.newPort(e.dir, port)
	e.ports[port] = f
	t.nodes++
	return f
}

// LookupPort is the Lookup of e's directory: any valid PORT name (see
// ParsePort) has a file.
func (t *HostPorts[K, D, F]) LookupPort(e *HostEntry[K, D, F], name string) (Node, error) {
	port, err := ParsePort(name)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.port(e, port), nil
}

// ListPorts is the List of e's directory: the PORTs with open files, in
// numeric order.
func (t *HostPorts[K, D, F]) ListPorts(e *HostEntry[K, D, F]) []DirEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	open := t.opened[e.key]
	nums := make([]int, 0, len(open))
	for p := range open {
		nums = append(nums, int(p))
	}
	slices.Sort(nums)
	ents := make([]DirEntry, 0, len(nums))
	for _, p := range nums {
		ents = append(ents, DirEntry{Name: strconv.Itoa(p), Node: t.port(e, uint16(p))})
	}
	return ents
}

// AddOpen counts delta more open files (or opens under way) of HOST k
// and PORT port.
func (t *HostPorts[K, D, F]) AddOpen(k K, port uint16, delta int) {
	ports := t.opened[k]
	if ports == nil {
		ports = map[uint16]int{}
		t.opened[k] = ports
	}
	if ports[port] += delta; ports[port] <= 0 {
		delete(ports, port)
	}
	if len(ports) == 0 {
		delete(t.opened, k)
	}
}

// AnyOpen reports whether any file of the tree is open.
func (t *HostPorts[K, D, F]) AnyOpen() bool { return len(t.opened) > 0 }

// OpenHosts are the HOSTs with open files, in no order.
func (t *HostPorts[K, D, F]) OpenHosts() []K {
	hosts := make([]K, 0, len(t.opened))
	for k := range t.opened {
		hosts = append(hosts, k)
	}
	return hosts
}

// sweep forgets the nodes without open files once there are max.
func (t *HostPorts[K, D, F]) sweep() {
	if t.nodes < t.max {
		return
	}
	t.nodes = 0
	for k, e := range t.hosts {
		open := t.opened[k]
		for p := range e.ports {
			if open[p] == 0 {
				delete(e.ports, p)
			}
		}
		if len(e.ports) == 0 && len(open) == 0 {
			delete(t.hosts, k)
			continue
		}
		t.nodes += 1 + len(e.ports)
	}
	if t.Swept != nil {
		t.Swept(t.nodes)
	}
}
