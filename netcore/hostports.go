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
	mu     sync.Locker
	max    int
	nodes  int
	hosts  map[K]hostNode[D, F]
	opened map[K]map[uint16]int // HOST -> PORT -> open files
	// Swept, if set, is told how many nodes are left after a sweep.
	Swept func(nodes int)
}

// PortNodes are the PORT files of one HOST directory of a HostPorts.
type PortNodes[F Node] struct{ m map[uint16]F }

type hostNode[D any, F Node] struct {
	dir   D
	ports *PortNodes[F]
}

// NewHostPorts makes a tree guarded by mu whose cache holds about max
// nodes.
func NewHostPorts[K comparable, D any, F Node](mu sync.Locker, max int) *HostPorts[K, D, F] {
	return &HostPorts[K, D, F]{mu: mu, max: max, hosts: map[K]hostNode[D, F]{}, opened: map[K]map[uint16]int{}}
}

// Nodes is how many nodes the cache holds.
func (t *HostPorts[K, D, F]) Nodes() int { return t.nodes }

// Host returns the directory of HOST k, made by mk (given the PORT files
// it is to hand to Port) if there is none.
func (t *HostPorts[K, D, F]) Host(k K, mk func(ports *PortNodes[F]) D) D {
	if h, ok := t.hosts[k]; ok {
		return h.dir
	}
	t.sweep()
	ports := &PortNodes[F]{m: map[uint16]F{}}
	h := hostNode[D, F]{dir: mk(ports), ports: ports}
	t.hosts[k] = h
	t.nodes++
	return h.dir
}

// Port returns the file of port among a HOST directory's ports, made by
// mk if there is none.
func (t *HostPorts[K, D, F]) Port(ports *PortNodes[F], port uint16, mk func() F) F {
	if f, ok := ports.m[port]; ok {
		return f
	}
	t.sweep()
	f := mk()
	ports.m[port] = f
	t.nodes++
	return f
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

// LookupPort is the Lookup of a HOST directory, whose PORT files are
// ports: any valid PORT name (see ParsePort) has a file, made by mk if
// needed.
func (t *HostPorts[K, D, F]) LookupPort(ports *PortNodes[F], name string, mk func(port uint16) F) (Node, error) {
	port, err := ParsePort(name)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Port(ports, port, func() F { return mk(port) }), nil
}

// ListPorts is the List of HOST k's directory, whose PORT files are
// ports: the PORTs with open files, in numeric order.
func (t *HostPorts[K, D, F]) ListPorts(k K, ports *PortNodes[F], mk func(port uint16) F) []DirEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	open := t.opened[k]
	nums := make([]int, 0, len(open))
	for p := range open {
		nums = append(nums, int(p))
	}
	slices.Sort(nums)
	ents := make([]DirEntry, 0, len(nums))
	for _, p := range nums {
		port := uint16(p)
		ents = append(ents, DirEntry{Name: strconv.Itoa(p), Node: t.Port(ports, port, func() F { return mk(port) })})
	}
	return ents
}

// sweep forgets the nodes without open files once there are max.
func (t *HostPorts[K, D, F]) sweep() {
	if t.nodes < t.max {
		return
	}
	t.nodes = 0
	for k, h := range t.hosts {
		open := t.opened[k]
		for p := range h.ports.m {
			if open[p] == 0 {
				delete(h.ports.m, p)
			}
		}
		if len(h.ports.m) == 0 && len(open) == 0 {
			delete(t.hosts, k)
			continue
		}
		t.nodes += 1 + len(h.ports.m)
	}
	if t.Swept != nil {
		t.Swept(t.nodes)
	}
}
