"""Tests of the Chia DataLayer and Wallet RPC clients (services/chia)."""
