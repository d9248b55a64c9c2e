module github.com/mnet-project/mnet

go 1.26.0

require (
	github.com/gopacket/gopacket v1.7.7
	github.com/hanwen/go-fuse/v2 v2.12.1
	golang.org/x/sys v0.49.0
)

require golang.org/x/net v0.55.0 // indirect

// go-fuse v2.12.1 (h1:b6NXOPCraS9NvN4vtHZXDN1nsNKdoDlyafWxWnuO30Q=) plus
// FUSE_POLL: third_party/go-fuse is that module with
// third_party/go-fuse-patches/*.patch applied, made and checked by
// third_party/go-fuse.sh. The versioned left side makes a bump of the
// require above stop matching, so it cannot silently drop the patches.
replace github.com/hanwen/go-fuse/v2 v2.12.1 => ./third_party/go-fuse
