# Build, install and package mnet. `make` builds the binary, the CNI
# plugin, the man pages (go-md2man) and the systemd unit into $(BUILD);
# `make install` installs them under $(DESTDIR)$(PREFIX), the mount helper
# in $(HELPERDIR), where mount(8) looks, and the CNI plugin in $(CNIDIR),
# where runtimes look; `make deb` builds a Debian package with dpkg-deb.

PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
UNITDIR   ?= $(PREFIX)/lib/systemd/system
DOCDIR    ?= $(PREFIX)/share/doc/mnet
# mount(8) runs /sbin/mount.TYPE, whatever the prefix.
HELPERDIR ?= /sbin
# Debian's CNI plugin directory (containernetworking-plugins, podman's and
# containerd's configuration), whatever the prefix.
CNIDIR    ?= /usr/lib/cni
STATEDIR  ?= /var/lib/mnet
DESTDIR   ?=
BUILD     ?= build

GO        ?= go
MD2MAN    ?= go-md2man
# A static binary (no libc needed); -buildvcs=auto stamps the revision
# that `mnet --version` prints when built from a git checkout.
GOBUILD   ?= CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto

# One version names a build in the package and the man pages' footer:
# 0.0~gitDATE.REV of the commit (the revision `mnet --version` prints too),
# 0.0~git0 outside a git checkout. The man pages are dated by the commit.
GITSTAMP    := $(shell git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null)
GITDATE     := $(shell git log -1 --format=%cd --date=format:%Y-%m-%d 2>/dev/null)
VERSION     ?= 0.0~git$(or $(GITSTAMP),0)
DEB_VERSION ?= $(VERSION)
DEB_ARCH    ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
DEB         := $(BUILD)/mnet_$(DEB_VERSION)_$(DEB_ARCH).deb

.PHONY: all man unit install uninstall deb clean FORCE

all: $(BUILD)/mnet $(BUILD)/mnet-cni man unit

# go build decides itself what is out of date.
$(BUILD)/mnet: FORCE
	@mkdir -p $(BUILD)
	$(GOBUILD) -o $@ ./cmd/mnet

$(BUILD)/mnet-cni: FORCE
	@mkdir -p $(BUILD)
	$(GOBUILD) -o $@ ./cmd/mnet-cni

man: $(BUILD)/mnet.7 $(BUILD)/mnet.8 $(BUILD)/mnet-cni.8

# The header line's @VERSION@ and @DATE@ become the footer's version and date.
$(BUILD)/mnet%: man/mnet%.md FORCE
	@mkdir -p $(BUILD)
	sed -e '1s|@VERSION@|$(VERSION)|' -e '1s|@DATE@|$(GITDATE)|' $< | $(MD2MAN) -out $@

unit: $(BUILD)/mnet.service

$(BUILD)/mnet.service: dist/mnet.service.in FORCE
	@mkdir -p $(BUILD)
	sed 's|@SBINDIR@|$(SBINDIR)|g' $< > $@

install: all
	install -D -m 0755 $(BUILD)/mnet $(DESTDIR)$(SBINDIR)/mnet
	install -d $(DESTDIR)$(HELPERDIR)
	ln -sfn $(SBINDIR)/mnet $(DESTDIR)$(HELPERDIR)/mount.mnet
	install -D -m 0644 $(BUILD)/mnet.service $(DESTDIR)$(UNITDIR)/mnet.service
	install -D -m 0644 $(BUILD)/mnet.7 $(DESTDIR)$(MANDIR)/man7/mnet.7
	install -D -m 0644 $(BUILD)/mnet.8 $(DESTDIR)$(MANDIR)/man8/mnet.8
	install -D -m 0755 $(BUILD)/mnet-cni $(DESTDIR)$(CNIDIR)/mnet
	install -D -m 0644 $(BUILD)/mnet-cni.8 $(DESTDIR)$(MANDIR)/man8/mnet-cni.8
	install -D -m 0644 dist/cni/mnet-lab.conflist $(DESTDIR)$(DOCDIR)/examples/mnet-lab.conflist
	install -d -m 0755 $(DESTDIR)$(STATEDIR)
	@echo 'installed; as root: systemctl daemon-reload, then systemctl enable --now mnet (or an fstab line, see mnet(8))'

# The state of persistent networks in $(STATEDIR) is kept; remove it by hand.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mnet $(DESTDIR)$(HELPERDIR)/mount.mnet \
		$(DESTDIR)$(UNITDIR)/mnet.service \
		$(DESTDIR)$(MANDIR)/man7/mnet.7 $(DESTDIR)$(MANDIR)/man8/mnet.8 \
		$(DESTDIR)$(CNIDIR)/mnet $(DESTDIR)$(MANDIR)/man8/mnet-cni.8 \
		$(DESTDIR)$(DOCDIR)/examples/mnet-lab.conflist
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(STATEDIR) 2>/dev/null

# The package installs under /usr (the helper in /usr/sbin, which is /sbin
# on Debian's merged /usr), with compressed man pages and no conffile.
DEBROOT := $(BUILD)/debroot

deb: all
	rm -rf $(DEBROOT) $(DEB)
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(DEBROOT)) PREFIX=/usr \
		HELPERDIR=/usr/sbin UNITDIR=/usr/lib/systemd/system CNIDIR=/usr/lib/cni \
		DOCDIR=/usr/share/doc/mnet BUILD=$(BUILD) GOBUILD='$(GOBUILD)' >/dev/null
	ln -sfn mnet $(DEBROOT)/usr/sbin/mount.mnet
	gzip -9n $(DEBROOT)/usr/share/man/man7/mnet.7 $(DEBROOT)/usr/share/man/man8/mnet.8 \
		$(DEBROOT)/usr/share/man/man8/mnet-cni.8
	install -d $(DEBROOT)/DEBIAN
	install -m 0755 dist/debian/postinst dist/debian/prerm dist/debian/postrm $(DEBROOT)/DEBIAN/
	sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
		-e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEBROOT) | cut -f1)|" \
		dist/debian/control.in > $(DEBROOT)/DEBIAN/control
	cd $(DEBROOT) && find usr -type f -exec md5sum {} + | sort -k2 > DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEBROOT) $(DEB)
	@echo built $(DEB)

clean:
	rm -rf $(BUILD)
