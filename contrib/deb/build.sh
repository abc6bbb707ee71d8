#!/usr/bin/env bash
# Build the fstaidd Debian package: contrib/deb/build.sh [OUTDIR]
#
# Builds /usr/bin/fstaidd once (static, -trimpath, version and commit set
# with -ldflags), generates the man page and changelog.Debian.gz, and
# packs them with nfpm run through `go run` at a pinned version, so that
# nothing but Go needs installing. Writes OUTDIR/fstaidd_<version>_<arch>.deb
# (OUTDIR defaults to contrib/deb/dist) and prints its path, alone, on
# stdout; everything else goes to stderr.
#
# Environment:
#   FSTAIDD_VERSION         upstream version (default: from `git describe
#                           --tags` when a v* tag exists, else 0.1.0~dev)
#   FSTAIDD_DEB_REVISION    Debian revision (default 1)
#   FSTAIDD_DEB_MAINTAINER  Maintainer field and changelog signature
#   GOARCH                  target architecture (default: the host's)
#   SOURCE_DATE_EPOCH       file times and changelog date (default: the
#                           commit's time), for reproducible packages
set -euo pipefail

# nfpm v2.46.0 and later need go.digitalxero.dev modules, which
# proxy.golang.org does not serve (403); v2.45.2 builds from the proxy alone.
NFPM_VERSION=v2.45.2

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
outdir=${1:-$here/dist}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
export PATH="/usr/local/go/bin:$PATH"

log() { echo "build.sh: $*" >&2; }

cd "$root"

# Version and commit. Debian versions allow [A-Za-z0-9.+~] (no '-': that
# separates the revision): v1.2.3 -> 1.2.3, v1.2.3-rc1 -> 1.2.3~rc1,
# 4 commits after v1.2.3 -> 1.2.3+git4.g<hash>; no tag -> 0.1.0~dev.<number
# of commits>+g<hash>, which sorts before 0.1.0 and grows with history.
commit=$(git rev-parse HEAD)
short=$(git rev-parse --short=12 HEAD)
if [ -n "${FSTAIDD_VERSION:-}" ]; then
	version=$FSTAIDD_VERSION
elif desc=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	version=$(printf '%s\n' "$desc" | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)$/+git\1.g\2/; s/-/~/g')
else
	version="0.1.0~dev.$(git rev-list --count HEAD)+g$short"
fi
if ! printf '%s\n' "$version" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
	log "version '$version' is not a valid Debian upstream version"
	exit 1
fi
# A binary built from a tree whose tracked files differ from the commit
# says so.
if ! git diff --quiet HEAD -- 2>/dev/null; then
	commit="$commit-dirty"
fi
revision=${FSTAIDD_DEB_REVISION:-1}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}

goarch=${GOARCH:-$(go env GOARCH)}
case $goarch in
amd64 | arm64 | riscv64 | s390x) debarch=$goarch ;;
386) debarch=i386 ;;
arm) debarch=armhf; export GOARM=${GOARM:-7} ;;
ppc64le) debarch=ppc64el ;;
*)
	log "no Debian architecture known for GOARCH=$goarch"
	exit 1
	;;
esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

log "fstaidd $version (commit $commit) for $debarch"
# grpcnotrace: grpc's golang.org/x/net/trace pulls in html/template, whose
# reflective method calls keep every exported method of every linked type
# (all of the EC2 client's ~700 operations): 50 MB stripped without it,
# 17 MB with it, and ~4 MiB less RSS.
if go list -tags grpcnotrace -deps ./contrib/fstaidd | grep -Eqx '(text|html)/template'; then
	log "fstaidd links text/template: the linker must then keep every exported method (a 3x larger binary); find the importer with: go list -tags grpcnotrace -deps -f '{{.ImportPath}}: {{.Imports}}' ./contrib/fstaidd | grep template"
	exit 1
fi
CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath -buildvcs=false -tags grpcnotrace \
	-ldflags "-s -w -X main.buildVersion=$version -X main.buildCommit=$commit" \
	-o "$stage/fstaidd" ./contrib/fstaidd

# Every Go module linked into the binary must be listed, with its license,
# in the copyright file: a "Files: <module path>/*" pattern, which also
# covers the modules below that path.
patterns=$(sed -nE 's|^(Files:)?[[:space:]]+([^[:space:]]+)/\*$|\2|p' "$here/copyright")
missing=$(go version -m "$stage/fstaidd" | awk -v pats="$patterns" '
	BEGIN { n = split(pats, p, "\n") }
	$1 == "dep" && $2 != "github.com/fstaid/fstaid" {
		ok = 0
		for (i = 1; i <= n; i++)
			if ($2 == p[i] || index($2, p[i] "/") == 1) ok = 1
		if (!ok) print $2
	}')
if [ -n "$missing" ]; then
	log "linked modules missing from contrib/deb/copyright (add a Files paragraph with their license):"
	sed 's/^/  /' <<<"$missing" >&2
	exit 1
fi

gzip -9n <"$here/fstaidd.8" >"$stage/fstaidd.8.gz"

# changelog.Debian.gz: Debian requires one; its top entry carries the
# package version. The history itself is git's.
maintainer=${FSTAIDD_DEB_MAINTAINER:-The fstaid authors <fstaid@users.noreply.github.com>}
{
	printf 'fstaidd (%s-%s) unstable; urgency=medium\n\n' "$version" "$revision"
	printf '  * Package of fstaid commit %s.\n' "${commit:0:12}"
	printf '    Changes: https://github.com/fstaid/fstaid/commits/%s\n\n' "$short"
	printf ' -- %s  %s\n' "$maintainer" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$stage/changelog.Debian.gz"

export FSTAIDD_DEB_STAGE=$stage FSTAIDD_DEB_VERSION=$version FSTAIDD_DEB_REVISION=$revision
export FSTAIDD_DEB_ARCH=$debarch FSTAIDD_DEB_MAINTAINER=$maintainer
deb="$outdir/fstaidd_${version}-${revision}_${debarch}.deb"
rm -f "$deb"
cd "$here"
go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" pkg \
	--packager deb --config nfpm.yaml --target "$deb" >&2
log "wrote $deb"
echo "$deb"
