module github.com/mnet-project/mnet

go 1.26.0

require (
	github.com/containernetworking/cni v1.3.1
	github.com/containernetworking/plugins v1.9.1
	github.com/gopacket/gopacket v1.7.7
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/sys v0.49.0
)

require (
	github.com/coreos/go-iptables v0.8.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/safchain/ethtool v0.6.2 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	go.opentelemetry.io/otel v1.29.0 // indirect
	go.opentelemetry.io/otel/trace v1.29.0 // indirect
	golang.org/x/net v0.55.0 // indirect
	sigs.k8s.io/knftables v0.0.18 // indirect
)

// go-fuse v2.12.1 (h1:b6NXOPCraS9NvN4vtHZXDN1nsNKdoDlyafWxWnuO30Q=) plus
// FUSE_POLL: third_party/go-fuse is that module with
// third_party/go-fuse-patches/*.patch applied, made and checked by
// third_party/go-fuse.sh. The versioned left side makes a bump of the
// require above stop matching, so it cannot silently drop the patches.
replace github.com/hanwen/go-fuse/v2 v2.12.1 => ./third_party/go-fuse
