#!/usr/bin/env python3
"""A test Istio CA: IstioCertificateService/CreateCertificate on grpcio, signing CSRs with a CA
made by `ztunnel ca-init`. It checks the bearer token, the clusterid header and that the CSR's
URI SAN equals the ImpersonatedIdentity metadata, and logs one line per request.

Stubs are generated at test time:  --stubs DIR must hold ca_pb2.py / ca_pb2_grpc.py.
Modes: ok (leaf, root), bundle (leaf+intermediate in one element, root), deny
(PERMISSION_DENIED), wrong-identity (a leaf for another identity), wrong-key (a leaf for a
different key), leaf-only (no root in the chain), deny-renew (PERMISSION_DENIED for an
identity that was already issued a certificate: rotations fail, enrollments succeed).
--mode-file FILE: when FILE exists, its content (one mode name) overrides --mode for each
request, so a test can switch the CA's behaviour while it runs. Each certificate handed out is
logged as "issued identity=... serial=<hex> not_after=<unix>".
"""
import argparse
import datetime
import os
import ipaddress
import sys
import time
from concurrent import futures

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WRONG_ID = "spiffe://cluster.local/ns/evil/sa/mallory"
MODES = ["ok", "bundle", "deny", "deny-renew", "wrong-identity", "wrong-key", "leaf-only"]


def current_mode(args):
    """--mode, or the content of --mode-file when that file exists and names a mode."""
    if args.mode_file and os.path.exists(args.mode_file):
        with open(args.mode_file) as f:
            m = f.read().strip()
        if m in MODES:
            return m
    return args.mode


def load_ca(cert_path, key_path):
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return cert, key


def sign(issuer_cert, issuer_key, public_key, ttl, sans=None, subject=None, ca=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(subject or x509.Name([]))
         .issuer_name(issuer_cert.subject)
         .public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1))
         .not_valid_after(now + datetime.timedelta(seconds=ttl))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=subject is None)
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    return b.sign(issuer_key, hashes.SHA256())


def not_after(cert):
    """Unix time; cryptography < 42 has no not_valid_after_utc (its value is naive UTC)."""
    t = getattr(cert, "not_valid_after_utc", None)
    if t is None:
        t = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_servicer(args, ca_cert, ca_key, pb2, pb2_grpc, grpc):
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = sign(ca_cert, ca_key, inter_key.public_key(), 86400,
                 subject=x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "inter")]),
                 ca=True)
    issued_ids = set()

    class Servicer(pb2_grpc.IstioCertificateServiceServicer):
        def CreateCertificate(self, request, context):
            md = dict(context.invocation_metadata())
            imp = ""
            if "ImpersonatedIdentity" in request.metadata.fields:
                imp = request.metadata.fields["ImpersonatedIdentity"].string_value
            csr = x509.load_pem_x509_csr(request.csr.encode())
            uris = csr.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(
                    x509.UniformResourceIdentifier)
            print(f"request identity={uris} impersonated={imp} ttl={request.validity_duration} "
                  f"clusterid={md.get('clusterid', '')} cn={len(csr.subject)} "
                  f"authorization={md.get('authorization', '')!r}", flush=True)
            if args.token and md.get("authorization") != "Bearer " + args.token:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad or missing bearer token")
            if md.get("clusterid") != args.cluster_id:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wrong clusterid")
            if not csr.is_signature_valid or len(uris) != 1 or len(csr.subject) != 0:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad CSR")
            if imp != uris[0]:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "ImpersonatedIdentity does not match the CSR")
            mode = current_mode(args)
            if mode == "deny" or (mode == "deny-renew" and imp in issued_ids):
                print(f"denied identity={imp} mode={mode}", flush=True)
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "denied by test CA: " + imp)
            ident, key, ttl = uris[0], csr.public_key(), request.validity_duration or 3600
            if mode == "wrong-identity":
                ident = WRONG_ID
            if mode == "wrong-key":
                key = ec.generate_private_key(ec.SECP256R1()).public_key()
            san = [x509.UniformResourceIdentifier(ident)]
            if mode == "bundle":
                leaf = sign(inter, inter_key, key, ttl, san)
                chain = [pem(leaf) + pem(inter), pem(ca_cert)]
            else:
                leaf = sign(ca_cert, ca_key, key, ttl, san)
                chain = [pem(leaf)] if mode == "leaf-only" else [pem(leaf), pem(ca_cert)]
            issued_ids.add(imp)
            print(f"issued identity={ident} serial={leaf.serial_number:X} "
                  f"not_after={not_after(leaf)}", flush=True)
            return pb2.IstioCertificateResponse(cert_chain=chain)

    return Servicer()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stubs", required=True)
    p.add_argument("--ca-cert", required=True)
    p.add_argument("--ca-key", required=True)
    p.add_argument("--listen", default="127.0.0.1:15010")
    p.add_argument("--tls", action="store_true", help="serve TLS with a cert for the host")
    p.add_argument("--token", default="")
    p.add_argument("--cluster-id", default="Kubernetes")
    p.add_argument("--mode", default="ok", choices=MODES)
    p.add_argument("--mode-file", default="", help="a file naming the mode, re-read per request")
    args = p.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    import ca_pb2
    import ca_pb2_grpc

    ca_cert, ca_key = load_ca(args.ca_cert, args.ca_key)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ca_pb2_grpc.add_IstioCertificateServiceServicer_to_server(
        make_servicer(args, ca_cert, ca_key, ca_pb2, ca_pb2_grpc, grpc), server)
    if args.tls:
        host = args.listen.rsplit(":", 1)[0].strip("[]")
        skey = ec.generate_private_key(ec.SECP256R1())
        scert = sign(ca_cert, ca_key, skey.public_key(), 86400,
                     [x509.IPAddress(ipaddress.ip_address(host))],
                     subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "istiod")]))
        kpem = skey.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        creds = grpc.ssl_server_credentials([(kpem, pem(scert).encode())])
        server.add_secure_port(args.listen, creds)
    else:
        server.add_insecure_port(args.listen)
    server.start()
    print(f"listening {args.listen} mode={args.mode} tls={args.tls}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
