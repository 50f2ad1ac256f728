"""webapi"""
