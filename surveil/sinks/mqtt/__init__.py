"""sinks/mqtt"""
