#!/usr/bin/env bash
# Renders helm/ztunnel without Helm or a cluster (Go text/template + Sprig from Debian's Go
# packages, built offline) and checks the DaemonSet (tests/chart/check_chart.py).
set -eu
cd "$(dirname "$0")/../.."
mkdir -p build
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$PWD/build/gocache" \
	go build -o build/chart-render tests/chart/render.go
python3 tests/chart/check_chart.py
