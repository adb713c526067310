"""Azurite's own ceiling for server-side copies: Copy Blob requests fired from 32 threads,
with no listing of the destination, no polling and no verification.

usage: raw_server_copy.py SRC_CONN SRC_CONTAINER DST_CONN DST_CONTAINER
"""
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas


def main():
    src_conn, src_container, dst_conn, dst_container = sys.argv[1:5]
    src = BlobServiceClient.from_connection_string(src_conn)
    dst = BlobServiceClient.from_connection_string(dst_conn)
    source = src.get_container_client(src_container)
    target = dst.get_container_client(dst_container)
    target.create_container()
    sas = generate_container_sas(
        src.account_name,
        src_container,
        account_key=src.credential.account_key,
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(days=1),
    )
    names = [b.name for b in source.list_blobs()]

    def copy(name):
        target.get_blob_client(name).start_copy_from_url(f"{source.get_blob_client(name).url}?{sas}")

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(copy, names))
    print(f"copied {len(names)}")


if __name__ == "__main__":
    main()
