"""(filled in by the layer)"""
