print("avgas-live")
